"""``aiomsg chat``: the interactive (or piped) chat client."""

from __future__ import annotations

import argparse

import aiomsg

from ._args import Command, Say, add_host_port
from ._errors import connect_error


def _add_arguments(p: argparse.ArgumentParser) -> None:
    add_host_port(p)
    p.add_argument("--nick", metavar="NAME", help="send /nick NAME once connected")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, say: Say) -> int:
    from aiomsg.chat.client import run_client

    return aiomsg.run(run_client(args.host, args.port, nick=args.nick, verbose=say.level > 0))


def _failure(exc: BaseException, args: argparse.Namespace) -> str:
    return connect_error(exc, args.host, args.port, 30.0)


COMMAND = Command(
    name="chat",
    help="chat interactively with a chat server",
    description=(
        "Chat with an aiomsg chat server. On a terminal: incoming lines above the prompt, with "
        "the time and in colour (not when stdout is not a terminal or NO_COLOR is set), your "
        "nickname in the prompt; /quit or Ctrl-D leaves, Ctrl-C leaves at once (status 130). "
        "With stdin from a pipe: each line is sent, each line received printed as it is. "
        "-v says where it connected and the event loop, on stderr."
    ),
    add_arguments=_add_arguments,
    run=_run,
    failure=_failure,
)
