"""``python -m aiomsg``: the ``aiomsg`` command (see :mod:`aiomsg.cli`).

Run ``aiomsg --help`` (or ``python -m aiomsg --help``) for the commands and
``aiomsg COMMAND --help`` for each one's options.
"""

from __future__ import annotations

import sys

import aiomsg

if getattr(aiomsg, "__distribution__", None) != "aiomsg-framing":
    # PyPI's other "aiomsg" replaced our __init__.py: say so in one line, not a traceback below.
    import _aiomsg_framing

    _aiomsg_framing.exit_if_foreign()

from aiomsg.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
