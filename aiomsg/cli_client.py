"""Kept for :mod:`aiomsg.chat.client` only: the command line lives in :mod:`aiomsg.cli`.

Delete this file once ``aiomsg/chat/client.py`` imports ``address`` from
``aiomsg.cli._errors`` and ``stdin_lines`` from ``aiomsg.cli._stdin``.
"""

from __future__ import annotations

from aiomsg.cli._errors import address
from aiomsg.cli._stdin import stdin_lines

__all__ = ["address", "stdin_lines"]
