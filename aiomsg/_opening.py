"""What ``connect()`` returns: await it, or use it as ``async with`` (websockets' pattern).

``conn = await aiomsg.connect(...)`` and ``async with aiomsg.connect(...) as conn:`` both
work (and so does the older ``async with await aiomsg.connect(...)``): the object wraps
the coroutine that connects.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Opening"]


class _Closable(Protocol):
    async def aclose(self) -> None: ...


T = TypeVar("T", bound=_Closable)


class Opening(Generic[T]):
    """A connection being opened: ``await`` it for the connection, or ``async with`` it.

    With ``async with``, the connection is closed (``aclose()``) when the block ends,
    however it ends. Await it or enter it once; an ``Opening`` that is neither never
    connects (Python warns that its coroutine was never awaited).
    """

    __slots__ = ("_connecting", "_opened")

    def __init__(self, connecting: Coroutine[Any, Any, T]) -> None:
        """Internal: made by ``connect()`` and its twins."""
        self._connecting = connecting
        self._opened: T | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._connecting.__await__()

    async def __aenter__(self) -> T:
        self._opened = await self._connecting
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened.aclose()
