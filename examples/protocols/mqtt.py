"""Publish to or subscribe from an MQTT 3.1.1 broker: a complete client in aiomsg.

    python examples/protocols/mqtt.py --host H --port P subscribe TOPIC [--count N]
    python examples/protocols/mqtt.py --host H --port P publish TOPIC MESSAGE [--qos 0|1]

``subscribe`` says ``subscribed to TOPIC`` on stderr once the broker has
confirmed (SUBACK), then prints each payload on a line of stdout, acknowledging
QoS 1 messages (PUBACK), and exits after ``--count`` of them (never, without it).
``publish`` sends one message, at QoS 1 waits for the broker's PUBACK, and
disconnects. Both send PINGREQ every ``--keepalive`` / 2 seconds (60 by default),
so the broker keeps an idle connection open. A refused connection or
subscription, or a broker that hangs up, prints one line on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys

import aiomsg
from aiomsg import recipes

# Packet types: the high nibble of the fixed-header byte, message[0].
CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP = 2, 3, 4, 9, 13
PINGREQ, DISCONNECT = b"\xc0", b"\xe0"


class MQTTError(Exception):
    """The broker refused something, or sent what this client does not expect."""


def string(data: bytes) -> bytes:
    """An MQTT string or binary field: a 2-byte length, then the bytes."""
    return struct.pack("!H", len(data)) + data


async def receive(conn: aiomsg.Connection, wanted: int) -> bytes:
    """The next packet of type ``wanted``; PINGRESP is skipped (it only proves liveness)."""
    while True:
        packet = await conn.receive()  # the fixed-header byte, then the rest
        kind = packet[0] >> 4
        if kind == wanted:
            return packet
        if kind != PINGRESP:
            raise MQTTError(f"expected packet type {wanted}, got {kind}")


async def keep_alive(conn: aiomsg.Connection, keepalive: int) -> None:
    while True:
        await asyncio.sleep(keepalive / 2)
        await conn.send(PINGREQ)


async def open_session(conn: aiomsg.Connection, keepalive: int) -> None:
    """CONNECT with a clean session and a random client id; check the CONNACK."""
    client_id = f"aiomsg-{os.urandom(6).hex()}".encode()
    variable_header = string(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive)
    await conn.send(b"\x10" + variable_header + string(client_id))
    connack = await receive(conn, CONNACK)
    if connack[2] != 0:  # return code: 0 accepted
        raise MQTTError(f"the broker refused the connection (return code {connack[2]})")


async def subscribe(conn: aiomsg.Connection, topic: str, count: int | None) -> None:
    # Ask for QoS 1 at most: QoS 1 messages then arrive at QoS 1, to acknowledge.
    await conn.send(b"\x82" + struct.pack("!H", 1) + string(topic.encode()) + b"\x01")
    suback = await receive(conn, SUBACK)
    if suback[3] == 0x80:
        raise MQTTError(f"the broker refused the subscription to {topic}")
    print(f"subscribed to {topic}", file=sys.stderr, flush=True)
    received = 0
    while count is None or received < count:
        packet = await receive(conn, PUBLISH)
        qos = (packet[0] >> 1) & 0x3
        (topic_length,) = struct.unpack_from("!H", packet, 1)
        at = 3 + topic_length
        if qos > 0:
            await conn.send(b"\x40" + packet[at : at + 2])  # PUBACK with its packet id
            at += 2
        sys.stdout.buffer.write(packet[at:] + b"\n")
        sys.stdout.buffer.flush()
        received += 1


async def publish(conn: aiomsg.Connection, topic: str, message: str, qos: int) -> None:
    packet_id = struct.pack("!H", 1) if qos else b""
    await conn.send(
        bytes([0x30 | qos << 1]) + string(topic.encode()) + packet_id + message.encode()
    )
    if qos and (await receive(conn, PUBACK))[1:3] != packet_id:
        raise MQTTError("the broker acknowledged another packet")


async def client(args: argparse.Namespace) -> None:
    async with aiomsg.connect(args.host, args.port, framing=recipes.mqtt()) as conn:
        await open_session(conn, args.keepalive)
        pinger = asyncio.create_task(keep_alive(conn, args.keepalive))
        try:
            if args.command == "subscribe":
                await subscribe(conn, args.topic, args.count)
            else:
                await publish(conn, args.topic, args.message, args.qos)
            await conn.send(DISCONNECT)
        finally:
            pinger.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--keepalive", type=int, default=60, metavar="SECONDS")
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("subscribe", help="print the payloads published to TOPIC")
    sub.add_argument("topic")
    sub.add_argument("--count", type=int, help="exit after this many messages")
    pub = commands.add_parser("publish", help="publish MESSAGE to TOPIC")
    pub.add_argument("topic")
    pub.add_argument("message")
    pub.add_argument("--qos", type=int, choices=(0, 1), default=0)
    args = parser.parse_args()
    if not 1 <= args.keepalive <= 65535:
        parser.error("--keepalive must be 1 to 65535 seconds")
    try:
        aiomsg.run(client(args))
    except (MQTTError, aiomsg.ConnectionClosed, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except (IndexError, KeyError, ValueError, struct.error) as exc:  # FramingError too
        print(f"the server sent a malformed message: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
