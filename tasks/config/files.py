"""Reading a file the user named (the hosts file, a secrets env_file) without trusting what it is:
a regular file only (not /dev/zero, a FIFO that would block, a directory) and at most MAX_BYTES."""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_BYTES = 1 << 20  # 1 MB: far above any hosts or dotenv file


class NotAFile(Exception):
    """The path names something other than a regular file of at most MAX_BYTES: str() says what."""


def read_regular(path: Path) -> bytes:
    """The file's bytes. OSError (FileNotFoundError, PermissionError...) as open() raises it; NotAFile
    for anything but a regular file, or one over MAX_BYTES. Opened without blocking (a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise NotAFile(f"is {_kind(mode)}, not a regular file")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise NotAFile(f"is over {MAX_BYTES // (1 << 20)} MB: not a file of settings")
    return data


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"
