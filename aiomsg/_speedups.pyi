# Types of the optional C module built from _speedups.c (see that file).
from collections.abc import Iterable

from .framing._base import Buffer

def scan(
    data: Buffer, pos: int, width: int, little: bool, max_size: int, out: list[bytes]
) -> int: ...
def encode(message: Buffer, width: int, little: bool, max_size: int) -> bytes | None: ...
def encode_many(
    messages: Iterable[Buffer], width: int, little: bool, max_size: int
) -> bytes | int: ...
