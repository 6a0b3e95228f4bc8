"""``--proxy-protocol`` and ``--proxy-trusted``: the PROXY protocol flags of the CLI servers."""

from __future__ import annotations

import argparse
from typing import Any

from .._proxy_accept import proxy_settings


def add_proxy_arguments(p: argparse.ArgumentParser) -> None:
    """Add the two flags (``aiomsg serve``, ``aiomsg chat-server``)."""
    p.add_argument(
        "--proxy-protocol",
        choices=("v1", "v2", "any"),
        help="every connection starts with a PROXY protocol header from a load balancer "
        "(HAProxy send-proxy: v1, send-proxy-v2: v2); the client's address is then the "
        "one it gives (needs --proxy-trusted)",
    )
    p.add_argument(
        "--proxy-trusted",
        action="append",
        metavar="NETWORKS",
        help="the load balancers' networks, comma-separated or repeated (e.g. "
        "10.0.0.0/8,127.0.0.1/32); any other peer is closed at once",
    )


def proxy_keywords(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The servers' ``proxy_protocol``/``proxy_trusted`` keywords from the flags; a wrong
    combination or network ends the command with a usage error (status 2)."""
    trusted = None
    if args.proxy_trusted is not None:
        trusted = [part.strip() for item in args.proxy_trusted for part in item.split(",")]
        trusted = [part for part in trusted if part]
    if args.proxy_protocol is not None and trusted is None:
        parser.error(
            "--proxy-protocol needs --proxy-trusted NETWORKS: the load balancers' "
            "networks, e.g. 10.0.0.0/8"
        )
    try:
        proxy_settings(args.proxy_protocol, trusted)
    except ValueError as exc:
        message = str(exc).replace("proxy_trusted", "--proxy-trusted")
        parser.error(message.replace("proxy_protocol", "--proxy-protocol"))
    return {"proxy_protocol": args.proxy_protocol, "proxy_trusted": trusted}
