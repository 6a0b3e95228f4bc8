"""The chat rules on their own (no sockets): limits that need a controllable clock."""

from __future__ import annotations

from aiomsg.chat import ChatLimits, ChatRoom


class FakeMember:
    def __init__(self, room_size: int = 1000) -> None:
        self.lines: list[str] = []
        self.notice: str | None = "<connected>"
        self.size = room_size

    def deliver(self, line: bytes) -> bool:
        if len(self.lines) >= self.size:
            return False
        self.lines.append(line.decode())
        return True

    def disconnect(self, notice: str | None) -> None:
        self.notice = notice

    def drained(self) -> bool:
        return self.notice != "<connected>"


def test_flood_limit_refills_with_time() -> None:
    now = [0.0]
    room = ChatRoom(ChatLimits(flood_rate=2, flood_burst=3), clock=lambda: now[0])
    talker, listener = FakeMember(), FakeMember()
    room.join(talker)
    room.join(listener)
    for _ in range(3):
        room.receive(talker, b"burst")
    now[0] += 1.0  # two more lines' worth
    room.receive(talker, b"a")
    room.receive(talker, b"b")
    assert talker.notice == "<connected>"
    room.receive(talker, b"one too many")
    assert talker.notice == "! flooding (over 2 lines/s): goodbye"
    assert listener.lines[-6:] == ["guest1: burst"] * 3 + [
        "guest1: a",
        "guest1: b",
        "* guest1 left",
    ]


def test_join_and_leave_notices_stop_in_large_rooms() -> None:
    room = ChatRoom(ChatLimits(announce_limit=2))
    first, second, third = FakeMember(), FakeMember(), FakeMember()
    room.join(first)
    room.join(second)
    room.join(third)  # the room now has 3 > 2 members: no notice
    assert first.lines[1:] == ["* guest2 joined"]
    room.leave(third)  # 2 members remain: announced again
    assert first.lines[2:] == ["* guest3 left"]


def test_slow_member_is_dropped_and_others_told() -> None:
    room = ChatRoom()
    slow, other, talker = FakeMember(room_size=3), FakeMember(), FakeMember()
    for member in (slow, other, talker):
        room.join(member)
    room.receive(talker, b"hello")  # slow's queue was full (welcome + 2 joins)
    assert slow.notice is None  # reset, no notice: it is not reading
    assert other.lines[-2:] == ["guest3: hello", "* guest1 left (too slow)"]


class BrokenMember(FakeMember):
    """A member whose connection is reset under it once ``reset`` is set: delivering raises."""

    reset = False

    def deliver(self, line: bytes) -> bool:
        if self.reset:
            raise ConnectionResetError("reset by peer")
        return super().deliver(line)

    def disconnect(self, notice: str | None) -> None:
        raise ConnectionResetError("reset by peer")


def test_a_member_that_fails_never_costs_the_others_a_line() -> None:
    room = ChatRoom()
    first, broken, last, talker = FakeMember(), BrokenMember(), FakeMember(), FakeMember()
    for member in (first, broken, last, talker):
        room.join(member)
    broken.reset = True
    room.receive(talker, b"hello")  # broken sits between first and last in the room
    room.receive(talker, b"again")
    for member in (first, last):
        assert member.lines[-3:] == ["guest4: hello", "* guest2 left", "guest4: again"]
    assert talker.lines[-1] == "* guest2 left"
    assert room.nicknames() == ["guest1", "guest3", "guest4"]


def test_members_text_is_neutralised_and_plain_text_left_alone() -> None:
    from aiomsg.chat.text import neutralise

    plain = "tab\there, naïve, Ελληνικά, 漢字, 😀 (and ^[ typed by hand)"
    assert neutralise(plain) is plain  # not even copied
    hostile = "\x00\x1b[2J\x7f\x85\x9b\u061c\u200e\u2028\u202a\u202e\u2066\u2069"
    shown = neutralise(hostile)
    assert shown == ("^@^[[2J^?\\x85\\x9b<U+061C><U+200E><U+2028><U+202A><U+202E><U+2066><U+2069>")
    assert neutralise(shown) == shown  # markers are plain text

    room = ChatRoom()
    talker, listener = FakeMember(), FakeMember()
    room.join(talker)
    room.join(listener)
    room.receive(talker, b"/me \x1b]0;title\x07")
    room.receive(talker, b"/nick \x1b[31mred")  # refused: not a nickname
    assert listener.lines[-1] == "* guest1 ^[]0;title^G"
    assert talker.lines[-1] == "! invalid nickname: use 1-24 letters, digits, _ or -"


def test_a_broadcast_reaches_exactly_who_is_in_the_room_now() -> None:
    # The room keeps its list of members between broadcasts: each join, leave, /quit,
    # expulsion and slow drop must change who the next line goes to.
    room = ChatRoom(ChatLimits(flood_rate=1, flood_burst=2), clock=lambda: 0.0)
    talker, leaver, quitter, flooder = (FakeMember() for _ in range(4))
    for member in (talker, leaver, quitter, flooder):
        room.join(member)
    room.receive(talker, b"one")
    room.leave(leaver)
    room.receive(quitter, b"off now")
    room.receive(quitter, b"/quit")
    for line in (b"fine", b"still fine", b"flood"):  # the third is over the burst of 2
        room.receive(flooder, line)
    late, slow = FakeMember(), FakeMember(room_size=1)  # slow reads its welcome, no more
    room.join(late)
    room.join(slow)
    room.receive(talker, b"two")
    assert leaver.lines[-1] == "guest1: one"
    for gone in (quitter, flooder):
        assert "guest1: two" not in gone.lines
    assert (slow.notice, slow.lines) == (
        None,
        ["* welcome to aiomsg chat, you are guest6 (/nick NAME, /who, /me ACTION, /quit)"],
    )
    assert late.lines[1:] == ["* guest6 joined", "guest1: two", "* guest6 left (too slow)"]
    assert talker.lines[-3:] == ["* guest5 joined", "* guest6 joined", "* guest6 left (too slow)"]
    assert room.nicknames() == ["guest1", "guest5"]


def test_a_broadcast_hands_every_member_the_same_encoded_line() -> None:
    # Encoded once per broadcast, not once per member: a line to a thousand clients is
    # one str.encode(), and Member.deliver() gets bytes it may keep as they are.
    received: list[bytes] = []

    class Keeping(FakeMember):
        def deliver(self, line: bytes) -> bool:
            received.append(line)
            return super().deliver(line)

    room = ChatRoom()
    talker, *listeners = (Keeping() for _ in range(4))
    for member in (talker, *listeners):
        room.join(member)
    received.clear()
    room.receive(talker, "naïve".encode())
    assert received == ["guest1: naïve".encode()] * 3
    assert len({id(line) for line in received}) == 1
