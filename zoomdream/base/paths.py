"""Every path a user gives, checked before anything opens it.

A name can stand for a folder, a FIFO (opening it for reading blocks until someone writes),
a device, a dangling symlink, a symlink loop or a file we may not read. Each gets a one-line
UserError naming what it is and what to give instead. This module imports no torch, so the
command line can refuse a bad path in a fraction of a second, before loading a network."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from .errors import UserError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _stat(path: Path, what: str) -> os.stat_result | None:
    """stat() following symlinks; None when nothing is there. Symlink trouble is an error."""
    try:
        return path.stat()
    except ValueError:  # an embedded NUL: no file can have that name
        raise UserError(f"{what} {str(path)!r} is not a possible file name (it holds a NUL byte)",
                        "check the path") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(f"{what} {path} is a symlink loop", "point it at a real file") from None
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            if path.is_symlink():
                raise UserError(f"{what} {path} is a dangling symlink (to {os.readlink(path)})",
                                "point it at an existing file") from None
            return None
        raise UserError(f"cannot access {what} {path} ({e.strerror})", "check the path and its permissions") from None


def input_file(path: str | os.PathLike, what: str, fix: str = "check the path") -> Path:
    """A regular file we can read. `what` names its role ("input image", "preset file")."""
    p = Path(path).expanduser()
    st = _stat(p, what)
    if st is None:
        raise UserError(f"{what} not found: {p}", fix)
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {p} is {_kind(st.st_mode)}, not a regular file", "give a file")
    if not os.access(p, os.R_OK):
        raise UserError(f"{what} {p} is not readable (permission denied)", "check the file's permissions")
    return p


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two names are one existing file (through symlinks and hard links)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def file_digest(path: Path) -> bytes:
    """SHA-256 of a file's contents, read in chunks: a video can be larger than memory."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def read_bytes(path: Path, what: str) -> bytes:
    """The whole file, with read errors (EIO, a permission changed since the check) as one line."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {what} {path} ({e.strerror or e})", "check the file") from None


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file (a preset, a jobs file) as data, or one line saying why it cannot be read."""
    data = read_bytes(path, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {path} is not UTF-8 text ({e.reason} at byte {e.start})", "save it as UTF-8") from None
    return toml_text(text.removeprefix("\ufeff"), str(path))  # Windows editors may start UTF-8 with a BOM


def toml_text(text: str, where: str) -> dict[str, Any]:
    """TOML text as data; `where` names it in the one-line error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where}: invalid TOML ({e})", "fix the syntax at that line") from None
    except RecursionError:  # tomllib recurses into nested arrays and tables
        raise UserError(f"{where}: values nest too deeply to read", "nest arrays and tables less deeply") from None
    except ValueError as e:  # an integer longer than Python will parse
        raise UserError(f"{where}: cannot read a value ({e})", "fix the value") from None


def output_file(path: str | os.PathLike, suffixes: tuple[str, ...], overwrite: bool, what: str = "output") -> Path:
    """A file we may create or replace, refused before any work is done."""
    p = Path(path).expanduser()
    st = _stat(p, what)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {p} is {_kind(st.st_mode)}", f"give a file name ending in {suffixes[0]}")
    if p.suffix.lower() not in suffixes:
        raise UserError(f"{what} {p} must end in {' or '.join(suffixes)}", f"name it e.g. out{suffixes[0]}")
    writable_folder(p.parent if str(p.parent) else Path("."), f"{what} folder")
    if st is not None:
        if not overwrite:
            raise UserError(f"{what} {p} already exists", "add --overwrite or choose another path")
    return p


def output_folder(path: str | os.PathLike, what: str) -> Path:
    """A folder to write files into: an existing one, or one we can create."""
    p = Path(path).expanduser()
    st = _stat(p, what)
    if st is None:
        parent = next((a for a in p.absolute().parents if a.exists()), Path("/"))
        writable_folder(parent, f"{what} {p}: folder")
    elif not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {p} is {_kind(st.st_mode)}, not a folder", "give a folder")
    else:
        writable_folder(p, what)
    return p


def writable_folder(folder: Path, what: str) -> None:
    st = _stat(folder, what)
    if st is None:
        raise UserError(f"{what} {folder} does not exist", "create it first or choose another path")
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {folder} is {_kind(st.st_mode)}, not a folder", "choose another path")
    if not writable(folder):
        raise UserError(f"{what} {folder} is not writable", "choose another path")


def writable(folder: Path) -> bool:
    """Whether a file can be created in `folder`, found by creating one: permission bits lie
    to root, to ACLs and on read-only mounts."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".zoomdream-probe-"):
            return True
    except OSError:
        return False


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")  # what a render writes (media/codecs.py: which codec goes where)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def frames_kept(frames_dir: str | os.PathLike | None, overwrite: bool) -> None:
    """A --frames-dir that already holds frames is refused unless they may be replaced."""
    if frames_dir is None or overwrite:
        return
    folder = Path(frames_dir).expanduser()
    held = next(folder.glob("frame_*.png"), None) if folder.is_dir() else None
    if held is not None:
        raise UserError(f"--frames-dir {folder} already holds frames ({held.name}…)",
                        "add --overwrite to replace them, or choose an empty folder")


def names_a_file(name: str | os.PathLike) -> bool:
    """Whether a preset argument is a file path rather than a shipped preset's name."""
    s = str(name)
    return s.endswith(".toml") or os.sep in s or os.path.lexists(s)


def check_dream_paths(image: str | os.PathLike, output: str | os.PathLike, weights: str | os.PathLike | None,
                      overwrite: bool) -> None:
    """Every path `dream` reads or writes, before any work."""
    input_file(image, "input image")
    output_file(output, IMAGE_SUFFIXES, overwrite)
    if weights is not None:
        input_file(weights, "weights file", "check the --weights path")


def check_render_paths(output: str | os.PathLike, input: str | os.PathLike | None = None,
                       preset: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                       frames_dir: str | os.PathLike | None = None, gif: str | os.PathLike | None = None,
                       overwrite: bool = False) -> None:
    """Every path `render` reads or writes, before any work. An existing output (and frames in
    --frames-dir: frames_kept) is checked by the render itself, which knows about resume;
    `overwrite` (or resume) lets the render replace the --gif."""
    output_file(output, VIDEO_SUFFIXES, overwrite=True)
    if input is not None:
        input_file(input, "input image")
    if preset is not None and names_a_file(preset):
        input_file(preset, "preset file", "check the path, or see: zoomdream presets")
    if weights is not None:
        input_file(weights, "weights file", "check the --weights path")
    if frames_dir is not None:
        output_folder(frames_dir, "--frames-dir")
    if gif is not None:
        output_file(gif, (".gif",), overwrite=overwrite, what="--gif")
