"""Testing a protocol with aiomsg.testing: a real server for the length of a block.

    pytest examples/testing_echo.py    # on asyncio and trio (anyio's pytest plugin)

The handler under test gets a FramedStream; the server runs on a free loopback port
or a Unix socket and is cancelled, its connections closed, when the block ends.
"""

import anyio
import pytest

import aiomsg
from aiomsg.testing import connected, running_server, running_unix_server


async def shout(stream: aiomsg.FramedStream) -> None:
    """The protocol under test: answers each message in capitals, ends at b"bye"."""
    async for message in stream:
        if message == b"bye":
            return  # the server closes the connection when the handler returns
        await stream.send(message.upper())


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # every test below runs once per backend


@pytest.mark.anyio
async def test_one_client() -> None:
    async with connected(shout, aiomsg.Lines()) as client:  # a server and one client
        await client.send(b"hi")
        assert await client.receive() == b"HI"


@pytest.mark.anyio
async def test_the_server_hangs_up_after_bye() -> None:
    async with connected(shout, aiomsg.Lines()) as client:
        await client.send(b"bye")
        with pytest.raises(anyio.EndOfStream):  # a clean end of stream, as anyio says it
            await client.receive()


@pytest.mark.anyio
async def test_two_clients_on_one_server() -> None:
    # running_server gives (host, port): connect however the code under test does.
    async with running_server(shout, aiomsg.Lines()) as (host, port):
        first = await aiomsg.connect_framed(host, port, framing=aiomsg.Lines())
        second = await aiomsg.connect_framed(host, port, framing=aiomsg.Lines())
        async with first, second:
            await first.send(b"one")
            await second.send(b"two")
            assert await second.receive() == b"TWO"
            assert await first.receive() == b"ONE"


@pytest.mark.anyio
async def test_over_a_unix_socket() -> None:
    async with running_unix_server(shout, aiomsg.Lines()) as path:  # a fresh temporary directory
        async with aiomsg.connect_framed_unix(path, framing=aiomsg.Lines()) as client:
            await client.send(b"local")
            assert await client.receive() == b"LOCAL"


@pytest.mark.anyio
async def test_one_client_over_a_unix_socket() -> None:
    async with connected(shout, aiomsg.Lines(), unix=True) as client:
        await client.send(b"short")
        assert await client.receive() == b"SHORT"
