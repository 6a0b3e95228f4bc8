"""The ``aiomsg`` command: chat, framed client and server, half-close requests, demo.

Run ``aiomsg --help`` (or ``python -m aiomsg --help``) for the commands and
``aiomsg COMMAND --help`` for each one's options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import urllib.parse
from collections.abc import Callable, Sequence

import aiomsg

if getattr(aiomsg, "__distribution__", None) != "aiomsg-framing":
    # PyPI's other "aiomsg" replaced our __init__.py: say so in one line, not a traceback below.
    import _aiomsg_framing

    _aiomsg_framing.exit_if_foreign()

from aiomsg.chat import ChatLimits
from aiomsg.chat.servers import IMPLS, run_chat_server
from aiomsg.cli_client import (
    FORMATS,
    INPUTS,
    CLIError,
    connect_error,
    listen_error,
    run_connect,
    run_request,
)
from aiomsg.framing import SPEC_HELP, Framing, parse_framing


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- chat-server ---------------------------------------------------------------------------


async def chat_server(
    impl: str,
    host: str,
    port: int,
    limits: ChatLimits,
    *,
    broker: str | None = None,
    room_name: str = "lobby",
    heartbeat: float = 1.0,
    reuse_port: bool = False,
    report_port: bool = False,
    exit_with_stdin: bool = False,
) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[int] = loop.create_future()
    asked_to_stop = asyncio.Event()  # SIGTERM, or the end of stdin: a clean stop, status 0
    main = asyncio.current_task()
    assert main is not None

    def stop() -> None:
        asked_to_stop.set()
        main.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals on Windows
        loop.add_signal_handler(signal.SIGTERM, stop)  # docker stop, systemd: say goodbye
    if exit_with_stdin:
        _stop_at_eof_on_stdin(loop, stop)

    def listening(f: asyncio.Future[int]) -> None:
        shared = f", room {room_name!r} shared through {broker}" if broker else ""
        _say(
            f"chat server ({impl} front) on {host}:{f.result()}{shared}, "
            f"event loop {aiomsg.loop_name()}"
        )
        if report_port:  # for the parent of --workers: this worker listens
            print(f.result(), flush=True)

    ready.add_done_callback(listening)
    try:
        await run_chat_server(
            impl,
            host,
            port,
            limits,
            ready,
            broker=broker,
            room_name=room_name,
            heartbeat=heartbeat,
            reuse_port=reuse_port,
        )
    except asyncio.CancelledError:
        if not asked_to_stop.is_set():
            raise


def _stop_at_eof_on_stdin(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """Call ``stop`` when stdin ends (the parent of ``--workers`` exited, however it did)."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop()

    loop.add_reader(fd, readable)


# --- serve (echo or print, any framing) -------------------------------------------------


async def run_framing_server(host: str, port: int, framing: Framing, mode: str) -> None:
    async def handler(conn: aiomsg.Connection) -> None:
        async for message in conn:
            if mode == "print":
                print(f"{conn.remote_address}: {message!r}", flush=True)
            else:
                await conn.send(message)

    async with aiomsg.serve(handler, host, port, framing=framing) as server:
        _say(
            f"{mode} server, {framing!r}, on {host}:{server.port}, event loop {aiomsg.loop_name()}"
        )
        await server.serve_forever()


# --- demo ---------------------------------------------------------------------------------

SCRIPT: list[tuple[str, str]] = [
    ("alice", "/nick alice"),
    ("bob", "/nick bob"),
    ("carol", "/nick carol"),
    ("alice", "hello everyone!"),
    ("bob", "/me waves"),
    ("carol", "/who"),
    ("carol", "nice to meet you both"),
    ("bob", "/quit"),
    ("alice", "bye bob"),
]
EXPECTED = [
    ("bob", "alice: hello everyone!"),
    ("carol", "alice: hello everyone!"),
    ("alice", "* bob waves"),
    ("carol", "* online: alice, bob, carol"),
    ("alice", "carol: nice to meet you both"),
    ("bob", "* bye"),
    ("alice", "* bob left"),
    ("carol", "alice: bye bob"),
]


async def demo(impl: str) -> int:
    """A chat server on loopback and three scripted clients; print the transcript."""
    _say(f"aiomsg demo: chat server ({impl} front) on loopback, event loop {aiomsg.loop_name()}")
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server_task = asyncio.create_task(run_chat_server(impl, "127.0.0.1", 0, ready=ready))
    port = await asyncio.wait_for(ready, 10)
    seen: list[tuple[str, str]] = []
    activity = asyncio.Event()

    async def listen(name: str, conn: aiomsg.Connection) -> None:
        async for line in conn:
            text = line.decode()
            seen.append((name, text))
            print(f"  {name:<6}| {text}", flush=True)
            activity.set()

    conns = {
        n: await aiomsg.connect("127.0.0.1", port, framing=aiomsg.Lines())
        for n in ("alice", "bob", "carol")
    }
    listeners = [asyncio.create_task(listen(n, c)) for n, c in conns.items()]
    await _quiet(activity)
    for name, line in SCRIPT:
        print(f"{name:>6} >| {line}", flush=True)
        await conns[name].send(line.encode())
        await _quiet(activity)
    for conn in conns.values():
        conn.close()
    await asyncio.gather(*listeners, return_exceptions=True)
    server_task.cancel()
    await asyncio.gather(server_task, return_exceptions=True)
    missing = [e for e in EXPECTED if e not in seen]
    if missing:
        _say(f"demo FAILED: never seen {missing}")
        return 1
    _say("demo ok: every client saw what it should")
    return 0


async def _quiet(activity: asyncio.Event, gap: float = 0.15, limit: float = 5.0) -> None:
    """Wait until no line has arrived for ``gap`` seconds, so the transcript reads in order."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        activity.clear()
        try:
            await asyncio.wait_for(activity.wait(), gap)
        except TimeoutError:
            return


# --- command line ---------------------------------------------------------------------------


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" in text
            or not action.option_strings
            or action.required
            or action.default in (None, False, argparse.SUPPRESS)
        ):
            return text
        return text + " (default: %(default)s)"


def version_line() -> str:
    """``aiomsg <version> (<event loop>)``: what ``--version`` prints."""
    try:
        loop = aiomsg.new_event_loop()
    except (RuntimeError, ValueError) as exc:  # AIOMSG_LOOP names a loop that cannot run
        return f"aiomsg {aiomsg.__version__} (no event loop: {exc})"
    try:
        return f"aiomsg {aiomsg.__version__} ({aiomsg.loop_name(loop)})"
    finally:
        loop.close()


class _Version(argparse.Action):
    """``--version``: print :func:`version_line` and exit (the loop is made only then)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="print aiomsg's version and event loop, then exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(version_line())
        parser.exit()


def _port(text: str) -> int:
    """A port to connect to: 1-65535."""
    return _port_in(text, 1)


def _listen_port(text: str) -> int:
    """A port to listen on: 0-65535 (0: any free port, printed when listening)."""
    return _port_in(text, 0)


def _port_in(text: str, lowest: int) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not lowest <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be {lowest}-65535, not {port}")
    return port


def _seconds(text: str) -> float | None:
    """A timeout on the command line: seconds, 0 for none."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):  # refuses NaN too
        raise argparse.ArgumentTypeError(f"a timeout must be 0 or more seconds, not {text}")
    return value or None


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be 1-256, not {value}")
    return value


def _broker_url(text: str) -> str:
    usage = f"not a Redis URL: {text!r} (redis://HOST:PORT/DB, rediss:// for TLS, unix://PATH)"
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(usage)
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(usage) from None
    if parts.scheme != "unix" and not parts.hostname:
        raise argparse.ArgumentTypeError(usage)
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise argparse.ArgumentTypeError(f"{usage}: the database is a number")
    return text


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of bytes: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least 1 byte, not {value}")
    return value


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="aiomsg",
        description="Message framing for asyncio: chat, framed clients and servers, requests.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help, description=description or help, formatter_class=_Formatter
        )
        p.add_argument("--version", action=_Version)
        commands[name] = p
        return p

    def host_port(p: argparse.ArgumentParser, server: bool = False) -> None:
        if server:
            p.add_argument("host", help="address to listen on")
            p.add_argument("port", type=_listen_port, help="port to listen on (0: any free)")
        else:
            p.add_argument("host", help="server's host name or address")
            p.add_argument("port", type=_port, help="server's port")

    p = command("chat-server", "run the example chat server")
    p.add_argument("--impl", choices=IMPLS, default="streams", help="which aiomsg front serves")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_listen_port, default=7777, help="port (0: any free)")
    p.add_argument("--max-line", type=_size, default=ChatLimits.max_line, help="bytes per line")
    p.add_argument(
        "--queue-lines",
        type=int,
        default=ChatLimits.queue_lines,
        help="lines waiting for a slow client before it is dropped",
    )
    p.add_argument("--flood-rate", type=float, default=ChatLimits.flood_rate, help="lines/s")
    p.add_argument(
        "--line-timeout",
        type=_seconds,
        default=ChatLimits.message_timeout,
        help="seconds a begun line may take to end (0: no limit)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=ChatLimits.idle_timeout,
        help="seconds a client may send nothing (0, the default: no limit)",
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        type=_broker_url,
        help="share the room with other servers through Redis: redis://HOST:PORT/DB "
        "(needs the [redis] extra)",
    )
    p.add_argument("--room", default="lobby", help="the room's name in the broker")
    p.add_argument(
        "--broker-heartbeat",
        type=_positive_seconds,
        default=1.0,
        help="seconds between this server's heartbeats to the broker; a server silent for "
        "3 heartbeats is presumed dead and its members leave within 4",
    )
    p.add_argument(
        "--workers",
        type=_count,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT) and the room (needs --broker)",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT, so that other servers may listen on the same port",
    )
    # For the parent of --workers: print the port on stdout once listening; stop at EOF on stdin.
    p.add_argument("--report-port", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--exit-with-stdin", action="store_true", help=argparse.SUPPRESS)

    p = command(
        "chat",
        "chat interactively with a chat server",
        "Chat with an aiomsg chat server. On a terminal: incoming lines above the prompt, with "
        "the time and in colour (not when stdout is not a terminal or NO_COLOR is set), your "
        "nickname in the prompt; /quit or Ctrl-D leaves, Ctrl-C leaves at once (status 130). "
        "With stdin from a pipe: each line is sent, each line received printed as it is.",
    )
    host_port(p)
    p.add_argument("--nick", metavar="NAME", help="send /nick NAME once connected")

    p = command(
        "connect",
        "a framed client, like netcat for messages",
        "Send each line of stdin (without its newline) as one message; print each message "
        "received on a line of its own. When stdin ends, half-close and print what still "
        "arrives until the server closes (or --wait expires). Exit status 1, with one line on "
        "stderr, when the connection fails or the server breaks the framing or resets.",
    )
    host_port(p)
    p.add_argument("--framing", required=True, metavar="SPEC", help=SPEC_HELP)
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="how to print a message: UTF-8 text, hex, or a JSON string (one line each)",
    )
    p.add_argument(
        "--input", choices=INPUTS, default="text", help="how to read a line: bytes, or hex"
    )
    p.add_argument(
        "--wait",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="after the end of stdin, how long to wait for the server to close (0: forever)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="seconds to wait for the connection (0: as long as the system does)",
    )
    p.add_argument(
        "--max-size",
        type=_size,
        default=aiomsg.DEFAULT_MAX_SIZE,
        metavar="BYTES",
        help="largest message, either way",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="say where it connected, on stderr")

    p = command(
        "request",
        "send stdin, half-close, write the response to stdout",
        "Send stdin as one message (by default as it is: --framing eos), half-close, and "
        "write the response (the first message received) to stdout. A server that closes "
        "without answering is an error. With a terminal on stdin, it connects first.",
    )
    host_port(p)
    p.add_argument(
        "--framing",
        default="eos",
        metavar="SPEC",
        help=f"framing of the request and the response: {SPEC_HELP}",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="seconds to connect, and then for the answer (0: no limit)",
    )
    p.add_argument(
        "--max-size",
        type=_size,
        default=aiomsg.DEFAULT_MAX_SIZE,
        metavar="BYTES",
        help="largest request or response",
    )

    p = command("serve", "an echo (or print) server for any framing")
    host_port(p, server=True)
    p.add_argument("--framing", required=True, metavar="SPEC", help=SPEC_HELP)
    p.add_argument(
        "--mode",
        choices=("echo", "print"),
        default="echo",
        help="send each message back, or print it on stdout",
    )

    p = command("demo", "chat server and three scripted clients on loopback")
    p.add_argument("--impl", choices=IMPLS, default="streams", help="which aiomsg front serves")
    return parser, commands


def _framing(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Framing:
    """The framing ``--framing`` names, or a usage error (exit status 2)."""
    max_size: int | None = getattr(args, "max_size", None)
    try:
        return parse_framing(args.framing, max_size=max_size)
    except ValueError as exc:
        parser.error(f"argument --framing: {exc}")


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The chat-server options a worker of ``--workers`` gets (the parent chooses the port)."""
    return [
        "--impl", args.impl,
        "--max-line", str(args.max_line),
        "--queue-lines", str(args.queue_lines),
        "--flood-rate", str(args.flood_rate),
        "--line-timeout", str(args.line_timeout or 0),
        "--idle-timeout", str(args.idle_timeout or 0),
        "--broker", args.broker,
        "--room", args.room,
        "--broker-heartbeat", str(args.broker_heartbeat),
    ]  # fmt: skip


def _unwrap(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one, as anyio raises them."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiomsg`` command line; return the exit status."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    command = args.command
    try:
        try:
            return _run(args, commands[command])
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
    except KeyboardInterrupt:
        return 130
    except CLIError as exc:
        _say(f"aiomsg {command}: {exc}")
        return 1
    except (OSError, aiomsg.AiomsgError, TimeoutError) as exc:
        if command in ("chat-server", "serve"):
            _say(f"aiomsg {command}: {listen_error(exc, args.host, args.port)}")
        elif command == "chat":
            _say(f"aiomsg {command}: {connect_error(exc, args.host, args.port, 30.0)}")
        else:
            _say(f"aiomsg {command}: {exc or type(exc).__name__}")
        return 1


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "chat-server":
        limits = ChatLimits(
            max_line=args.max_line,
            queue_lines=args.queue_lines,
            flood_rate=args.flood_rate,
            message_timeout=args.line_timeout,
            idle_timeout=args.idle_timeout,
        )
        if args.broker and importlib.util.find_spec("redis") is None:
            raise CLIError("--broker needs the redis package: pip install 'aiomsg-framing[redis]'")
        if args.workers > 1:
            if not args.broker:
                parser.error("--workers needs --broker (the workers share the room through it)")
            from aiomsg.chat.workers import run_workers

            return run_workers(args.workers, _worker_args(args), args.host, args.port)
        aiomsg.run(
            chat_server(
                args.impl,
                args.host,
                args.port,
                limits,
                broker=args.broker,
                room_name=args.room,
                heartbeat=args.broker_heartbeat,
                reuse_port=args.reuse_port,
                report_port=args.report_port,
                exit_with_stdin=args.exit_with_stdin,
            )
        )
    elif args.command == "chat":
        from aiomsg.chat.client import run_client

        return aiomsg.run(run_client(args.host, args.port, nick=args.nick))
    elif args.command == "connect":
        framing = _framing(args, parser)
        return aiomsg.run(
            run_connect(
                args.host,
                args.port,
                framing,
                fmt=args.format,
                input_mode=args.input,
                wait=args.wait,
                timeout=args.timeout,
                verbose=args.verbose,
            )
        )
    elif args.command == "request":
        framing = _framing(args, parser)
        return aiomsg.run(run_request(args.host, args.port, framing, timeout=args.timeout))
    elif args.command == "serve":
        framing = _framing(args, parser)
        aiomsg.run(run_framing_server(args.host, args.port, framing, args.mode))
    elif args.command == "demo":
        return aiomsg.run(demo(args.impl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
