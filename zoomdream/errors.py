"""The one error type users see. Anything raised as UserError becomes a single line and exit
status 2 in the CLI; everything else is a bug and exits 1."""

from __future__ import annotations

import difflib
import errno
import os
import tempfile
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


def check_output_path(path: Path, suffixes: tuple[str, ...], overwrite: bool) -> None:
    """Refuse an output we could not write, before any work is done."""
    if path.suffix.lower() not in suffixes:
        raise UserError(f"output {path} must end in {' or '.join(suffixes)}", f"name it e.g. out{suffixes[0]}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder {parent} does not exist", "create it first or choose another -o path")
    if not writable(parent):
        raise UserError(f"output folder {parent} is not writable", "choose another -o path")
    if path.is_dir():
        raise UserError(f"output {path} is a folder", f"give a file name ending in {suffixes[0]}")
    if path.exists() and not overwrite:
        raise UserError(f"output {path} already exists", "add --overwrite or choose another -o path")


def writable(folder: Path) -> bool:
    """Whether a file can be created in `folder`, found by creating one: permission bits lie
    to root, to ACLs and on read-only mounts."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".zoomdream-probe-"):
            return True
    except OSError:
        return False


_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def disk_full(path: Path, detail: str = "") -> UserError:
    return UserError(f"disk full while writing {path}" + (f" ({detail})" if detail else ""),
                     "free some space and run the same command again with --resume")


def write_error(path: Path, err: OSError) -> UserError:
    """A failed write as the user can act on it: a full disk (or file-size limit) is said so."""
    if err.errno in _DISK_FULL:
        return disk_full(path, os.strerror(err.errno))
    return UserError(f"cannot write {path} ({err.strerror or err})", "check the folder exists and is writable")
