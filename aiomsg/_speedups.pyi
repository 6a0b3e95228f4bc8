# Types of the optional C speedups (_speedups.c); its docstrings say what each does.
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any

from .framing._contract import Buffer

K_BINARY: int
K_ASCII: int
K_NETSTRING: int
K_VARINT: int
K_FIXED: int
K_TYPED: int
K_DELIMITED: int
K_FIELD: int

def encode(message: Buffer, width: int, little: bool, max_size: int, /) -> bytes | None: ...
def encode_many(
    messages: Iterable[Buffer], width: int, little: bool, max_size: int, /
) -> bytes | int: ...

class Encoder:
    def __init__(
        self, width: int, little: bool, max_size: int, too_large: Callable[[int], Exception], /
    ) -> None: ...
    def encode(self, message: Buffer, /) -> bytes: ...

class Scanner:
    def __init__(
        self,
        kind: int,
        max_size: int,
        a: int = 0,
        flag: bool = False,
        delimiter: bytes | None = None,
        table: tuple[int | Scanner | None, ...] | None = None,
        layout: tuple[int, int, int, int, int] | None = None,
    ) -> None: ...
    def scan(self, data: Buffer, pos: int, out: list[bytes], end: int = ..., /) -> int: ...

class BodyBuffer:
    def __init__(self, total: int) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def need(self) -> int: ...
    def fill(self, data: Buffer, pos: int, /) -> int: ...
    def window(self, limit: int, /) -> memoryview: ...
    def advance(self, n: int, /) -> None: ...
    def finish(self) -> bytes: ...
    def partial(self) -> bytes: ...

class ReadyIterator(AsyncIterator[bytes]):
    def __init__(
        self,
        ready: deque[bytes],
        slow: Callable[[], Coroutine[Any, Any, bytes]],
        trio: Any = None,
        end: type[BaseException] | None = None,
        /,
    ) -> None: ...
    def __aiter__(self) -> ReadyIterator: ...
    def __anext__(self) -> Awaitable[bytes]: ...
