"""Choosing the event loop: uvloop where available, AIOMSG_LOOP to force one."""

from __future__ import annotations

import asyncio
import sys

import pytest

import aiomsg


async def which() -> str:
    return aiomsg.loop_name()


def test_run_prefers_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOMSG_LOOP", raising=False)
    assert aiomsg.run(which()) == "uvloop"


def test_aiomsg_loop_asyncio_opts_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOMSG_LOOP", "asyncio")
    assert aiomsg.run(which()) == "asyncio"
    loop = aiomsg.new_event_loop()
    try:
        assert aiomsg.loop_name(loop) == "asyncio"
    finally:
        loop.close()


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as on a platform without uvloop
    monkeypatch.delenv("AIOMSG_LOOP", raising=False)
    assert aiomsg.run(which()) == "asyncio"
    monkeypatch.setenv("AIOMSG_LOOP", "uvloop")
    with pytest.raises(RuntimeError, match="uvloop cannot be imported"):
        aiomsg.loop_factory()


def test_unknown_loop_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOMSG_LOOP", "tokio")
    with pytest.raises(ValueError, match="AIOMSG_LOOP"):
        aiomsg.run(asyncio.sleep(0))
