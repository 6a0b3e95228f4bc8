"""The socket file of every aiomsg Unix-socket server: :func:`bind_unix`.

One rule for ``serve_unix``, ``serve_framed_unix`` (asyncio and trio) and
``serve_requests_unix``:

* nothing at the path: the socket is created there;
* a socket on which a server answers: :class:`UnixSocketInUseError`, nothing is
  touched (replacing it would leave that server running, unreachable);
* a stale socket (connecting is refused: its server is gone): replaced;
* anything else (a regular file, a directory, a FIFO...): :class:`FileExistsError`
  saying what is there; it is left alone.

The file gets ``mode`` (default ``0o660``: owner and group) with no window in which
it has other permissions: the socket is bound, listening and chmod-ed inside a new
private directory (``0o700``, next to the path, so on the same file system), then
hard-linked to the path, which fails rather than replaces if something appeared
there meanwhile, and the private name is removed (``getsockname()`` still names
it: the kernel keeps the name a socket was bound under). A umask around ``bind()`` would
close the window too, but the umask belongs to the whole process: any thread that
creates a file at that moment would get it. Where the private name would be too
long for a socket address, the socket is bound at the path itself and chmod-ed at
once (a window of one system call, with the permissions the umask gives). On
Linux, ``fchmod()`` on the socket before ``bind()`` would also work, but that is
an undocumented detail of one kernel.

:meth:`UnixSocketFile.remove` deletes the file when the server closes, only if it is
still the one this server created (same device and inode), so a successor's socket
is never removed. Call it *before* closing the socket: a bound socket holds its
inode, so that number cannot have been given to another file meanwhile (a freed
inode number is soon reused, by a successor's socket perhaps).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import stat

__all__ = ["DEFAULT_UNIX_MODE", "UnixSocketFile", "UnixSocketInUseError", "bind_unix"]

#: The permissions of a server's socket file by default: its owner and group may connect.
DEFAULT_UNIX_MODE = 0o660

# sun_path holds 108 bytes on Linux, 104 on the BSDs and macOS, NUL included.
_MAX_PATH = 103


class UnixSocketInUseError(OSError):
    """A server already answers on the Unix socket at this path (``errno`` is EADDRINUSE).

    Stop that server, or choose another path; nothing was changed on disk.
    """


class UnixSocketFile:
    """The socket file a server created; :meth:`remove` deletes it if it is still that file."""

    __slots__ = ("_identity", "path")

    def __init__(self, path: str, identity: tuple[int, int]) -> None:
        self.path = path
        self._identity = identity

    def remove(self) -> None:
        """Remove the file if it is still the one created (idempotent, never raises)."""
        try:
            found = os.lstat(self.path)
            if _identity(found) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass  # gone already, or not ours to remove


def _describe(mode: int) -> str:
    for test, what in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return what
    return "a file that is not a socket"


def clear_path(path: str) -> None:
    """Make ``path`` free for a new socket, or raise saying why it is not.

    Raises:
        UnixSocketInUseError: a server answers on the socket there.
        FileExistsError: something other than a socket is there.
        PermissionError: a socket is there that this process may not connect to,
            so whether its server is alive cannot be told.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise FileExistsError(
            errno.EEXIST,
            f"cannot serve on {path!r}: {_describe(found.st_mode)} is there, not a socket "
            "(it was left alone: remove it or choose another path)",
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)  # a live server with a full queue answers EAGAIN
        code = probe.connect_ex(path)
    if code == errno.ECONNREFUSED:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # stale: no process listens there any more
        return
    if code == errno.ENOENT:
        return  # removed meanwhile
    if code in (errno.EACCES, errno.EPERM):
        raise PermissionError(
            code,
            f"cannot serve on {path!r}: a socket is there that this process may not "
            "connect to, so whether a server listens on it cannot be told (it was left alone)",
        )
    raise UnixSocketInUseError(
        errno.EADDRINUSE,
        f"cannot serve on {path!r}: a server is listening there (stop it, or choose "
        "another path; its socket was left alone)",
    )


def bind_unix(
    path: str | os.PathLike[str], *, mode: int = DEFAULT_UNIX_MODE, backlog: int
) -> tuple[socket.socket, UnixSocketFile]:
    """A listening Unix socket at ``path`` with permissions ``mode``, and its file.

    The socket is non-blocking; when done, call the file's ``remove()``, then close it.

    Raises:
        UnixSocketInUseError: a server answers at ``path``.
        FileExistsError: a file other than a socket is at ``path``.
        ValueError: ``mode`` is not a permission mask (``0`` to ``0o777``).
        OSError: the socket could not be made (the directory does not exist, the
            path is too long, permission denied...).
    """
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        raise ValueError(f"mode must be permission bits from 0 to 0o777, not {mode!r}")
    where = os.fspath(path)
    if not isinstance(where, str):
        raise TypeError(f"a Unix socket path must be a str or os.PathLike[str], not {path!r}")
    clear_path(where)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        parent = os.path.dirname(os.path.abspath(where))
        private = os.path.join(parent, f".aiomsg-{secrets.token_hex(4)}")
        temporary = os.path.join(private, "s")
        if len(os.fsencode(temporary)) <= _MAX_PATH:
            os.mkdir(private, 0o700)
            try:
                sock.bind(temporary)
                sock.listen(backlog)  # before it is reachable: a probe must not find it stale
                os.chmod(temporary, mode)
                try:
                    os.link(temporary, where)
                except FileExistsError:
                    clear_path(where)  # a server, or another file, appeared meanwhile
                    os.link(temporary, where)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                with contextlib.suppress(OSError):
                    os.rmdir(private)
        else:
            sock.bind(where)
            sock.listen(backlog)
            os.chmod(where, mode)
        found = os.lstat(where)
    except BaseException:
        sock.close()
        raise
    return sock, UnixSocketFile(where, _identity(found))


def _identity(found: os.stat_result) -> tuple[int, int]:
    return found.st_dev, found.st_ino
