"""Which event loop aiomsg runs on: uvloop where it is installed, the stdlib loop elsewhere.

    python examples/event_loop.py                      # uvloop (or asyncio)
    AIOMSG_LOOP=asyncio python examples/event_loop.py  # asyncio
"""

import asyncio

import aiomsg


async def main() -> str:
    return aiomsg.loop_name()  # "uvloop" or "asyncio": the loop running this coroutine


if __name__ == "__main__":
    # Like asyncio.run(), on the loop aiomsg chose (AIOMSG_LOOP=asyncio|uvloop to choose).
    print("aiomsg.run:", aiomsg.run(main()))

    # The same choice as a loop object, for code that manages its loop itself.
    loop = aiomsg.new_event_loop()
    try:
        print("new_event_loop:", loop.run_until_complete(main()))
    finally:
        loop.close()

    # Or hand the choice to asyncio.Runner, which is what aiomsg.run() does.
    with asyncio.Runner(loop_factory=aiomsg.loop_factory()) as runner:
        print("asyncio.Runner:", runner.run(main()))
