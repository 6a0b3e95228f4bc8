"""Push messages to every connected client with broadcast(), and a client that
reconnects by itself with connect_forever().

    python examples/news_feed.py

The server keeps the set of its subscribers and broadcasts each item to all of
them without waiting for any (a subscriber that stops reading is skipped, not
waited for). The subscriber loops over connect_forever(): when the server goes
away it connects again, with exponential back-off, and carries on. Here the
server is stopped and started again on the same port in the middle.
"""

import asyncio

import aiomsg

FRAMING = aiomsg.LengthPrefixed(4)
subscribers: set[aiomsg.Connection] = set()


async def subscribe(conn: aiomsg.Connection) -> None:
    # The server's handler: register the client until it leaves (it sends nothing).
    subscribers.add(conn)
    try:
        async for _ in conn:
            pass
    finally:
        subscribers.discard(conn)


async def publish(*items: bytes) -> None:
    while not subscribers:  # for this demo: wait until the subscriber is (re)connected
        await asyncio.sleep(0.01)
    for item in items:
        aiomsg.broadcast(subscribers, item)  # never waits; returns how many connections took it


async def subscriber(port: int) -> None:
    # A new connection each time the last one ends; failed attempts are retried after
    # min_delay, doubling up to max_delay (with jitter).
    async for conn in aiomsg.connect_forever(
        "127.0.0.1", port, framing=FRAMING, min_delay=0.1, max_delay=2.0
    ):
        print("subscriber: connected")
        try:
            async for item in conn:  # ends when the server closes the connection
                print("subscriber: got", item)
                if item == b"that's all":
                    return
        except aiomsg.ConnectionClosed:  # a reset rather than a clean close
            pass
        print("subscriber: the server went away; reconnecting")


async def main() -> None:
    server = await aiomsg.serve(subscribe, "127.0.0.1", 0, framing=FRAMING)
    port = server.port
    reader = asyncio.create_task(subscriber(port))
    await publish(b"news 1", b"news 2")
    server.close()  # stops listening, cancels the handlers: their connections close (flushed)
    await server.wait_closed()  # every handler has finished: the subscriber is gone from the set

    async with aiomsg.serve(subscribe, "127.0.0.1", port, framing=FRAMING):  # back, same port
        await publish(b"news 3", b"that's all")
        await asyncio.wait_for(reader, timeout=10)


if __name__ == "__main__":
    aiomsg.run(main())
