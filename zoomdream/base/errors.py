"""The one error type users see. Anything raised as UserError becomes a single line and exit
status 2 in the CLI; everything else is a bug and exits 1."""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """Bad input: the message names the problem and how to fix it, on one line."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = one_line(problem)
        self.fix = one_line(fix) if fix else fix
        super().__init__(f"{self.problem}; {self.fix}" if fix else self.problem)


def one_line(text: str) -> str:
    """Echoed input may hold newlines or control characters; the message must stay one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def quoted(text: str, limit: int = 80) -> str:
    """User text inside a message, cut short: a message stays one readable line whatever was
    typed (a generated expression can be a megabyte)."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 3]) + "..."


def closest(name: str, valid: Iterable[str], n: int = 4) -> str:
    """'did you mean …' text for an unknown name, or the first few valid names."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=n, cutoff=0.5)
    if not close:
        close = [v for v in valid if name.lower() in v.lower()][:n]
    if close:
        return "did you mean " + ", ".join(close) + "?"
    shown = ", ".join(valid[:8]) + (", …" if len(valid) > 8 else "")
    return f"valid names: {shown}"


def out_of_memory(error: BaseException) -> UserError | None:
    """A failed allocation, on the host or the GPU, as one line; None for any other error.
    torch and OpenCV say so in their own types and words (torch on the CPU: a RuntimeError
    "can't allocate memory"; OpenCV: "Insufficient memory")."""
    if isinstance(error, UserError):  # already said, perhaps quoting a tool's "out of memory"
        return None
    text = str(error).lower()
    words = ("can't allocate memory", "not enough memory", "out of memory", "insufficient memory")
    if not (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError" or any(w in text for w in words)):
        return None
    return UserError("not enough memory to dream at this size", "use a smaller --size, or a smaller --tile")


_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def disk_full(path: Path, detail: str = "") -> UserError:
    return UserError(f"disk full while writing {path}" + (f" ({detail})" if detail else ""),
                     "free some space and run the same command again with --resume")


def write_error(path: Path, err: OSError) -> UserError:
    """A failed write as the user can act on it: a full disk (or file-size limit) is said so."""
    if err.errno in _DISK_FULL:
        return disk_full(path, os.strerror(err.errno))
    return UserError(f"cannot write {path} ({err.strerror or err})", "check the folder exists and is writable")
