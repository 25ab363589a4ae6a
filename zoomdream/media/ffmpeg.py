"""The ffmpeg binary every video goes through (the one imageio-ffmpeg ships, or
ZOOMDREAM_FFMPEG): finding and checking it, running it, reading what it says of a file, and
turning its failures into one line each.

Every ffmpeg runs in its own process group (start_new_session), so a terminal's Ctrl-C reaches
only zoomdream, which then closes its files cleanly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

from ..base.errors import UserError, disk_full


def ffmpeg_exe() -> str:
    exe = os.environ.get("ZOOMDREAM_FFMPEG")
    if exe:
        if not Path(exe).is_file():
            raise UserError(f"ZOOMDREAM_FFMPEG points to a missing file: {exe}", "unset it or fix the path")
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        raise UserError("ffmpeg not found", "pip install imageio-ffmpeg, or set ZOOMDREAM_FFMPEG") from None


def broken(exe: str, why: str) -> UserError:
    return UserError(f"ffmpeg at {exe} {why}", "reinstall imageio-ffmpeg, or point ZOOMDREAM_FFMPEG at a working ffmpeg")


def check_ffmpeg() -> str:
    """The ffmpeg binary, after making sure it runs at all."""
    exe = ffmpeg_exe()
    try:
        r = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise broken(exe, f"cannot run ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    if r.returncode != 0:
        raise broken(exe, f"does not work (exit status {r.returncode})")
    return exe


def run(args: list[str], text: bool = True) -> subprocess.CompletedProcess:
    """ffmpeg with `args`, to its end, its output captured (as text, or bytes: decoded sound)."""
    extra: dict[str, Any] = {"text": True, "errors": "replace"} if text else {}
    return subprocess.run([ffmpeg_exe(), *args], capture_output=True, start_new_session=True, **extra)


def run_or_fail(args: list[str], what: str, path: Path, written: Path | None = None) -> None:
    """ffmpeg writing `path` (`what`: "joining parts into"), or the one-line reason it failed."""
    r = run(args)
    if r.returncode != 0:
        raise failure(what, path, r.stderr, written)


def start(args: list[str], stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.DEVNULL,
          stderr: IO | None = None) -> subprocess.Popen:
    """ffmpeg with `args` running beside us (frames streamed in or out through a pipe)."""
    exe = ffmpeg_exe()
    try:
        return subprocess.Popen([exe, *args], stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True)
    except OSError as e:
        raise broken(exe, f"cannot run ({e.strerror})") from None


def info(path: Path) -> str:
    """What ffmpeg says of a file it opens (its streams, or why it cannot)."""
    return run(["-hide_banner", "-nostdin", "-i", str(path)]).stderr


def tags(path: Path) -> dict[str, str]:
    """A file's container metadata (its global tags, keys in lower case: Matroska writes them
    in upper case), read through ffmpeg's ffmetadata format; {} for a file without any."""
    r = run(["-nostdin", "-v", "error", "-i", str(path), "-map_metadata", "0", "-f", "ffmetadata", "-"])
    if r.returncode != 0:
        raise damaged(path, r.stderr)
    out: dict[str, str] = {}
    for line in _ffmetadata_lines(r.stdout):
        text = "".join(c for c, _ in line)
        if text.startswith("[") and text.rstrip().endswith("]"):
            break  # the first stream's or chapter's section: past the file's own tags
        eq = next((i for i, (c, escaped) in enumerate(line) if c == "=" and not escaped), None)
        if eq is not None and not text.startswith(";"):
            out[text[:eq].lower()] = text[eq + 1:]
    return out


def _ffmetadata_lines(text: str) -> list[list[tuple[str, bool]]]:
    """ffmetadata's lines as (character, escaped) pairs: a backslash escapes the next
    character (= ; # \\ or a newline, which then continues the value)."""
    lines: list[list[tuple[str, bool]]] = [[]]
    escaped = False
    for c in text:
        if escaped:
            lines[-1].append((c, True))
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == "\n":
            lines.append([])
        else:
            lines[-1].append((c, False))
    return lines


def damaged(path: Path, stderr: str, what: str = "video") -> UserError:
    """A file ffmpeg cannot read, with its reason in words."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "must be specified" not in ln]
    why = re.sub(r"\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", lines[-1])[:160] if lines else "no reason given"
    if "moov atom not found" in stderr:
        why = "its index (moov atom) is missing: the file is truncated, or not a video"
    formats = "MP4, MOV, WebM, GIF…" if what == "video" else "MP3, WAV, FLAC, AAC…"
    return UserError(f"cannot read {what} {path}: {why}", f"check it plays, or re-export it ({formats})")


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _out_of_space(path: Path) -> bool:
    """Whether a failed write to `path` ran out of room. ffmpeg often dies silently on a full
    disk, so its message alone cannot tell: look at the free space and the file-size limit."""
    try:
        if shutil.disk_usage(path.parent).free < 16 * 2**20:
            return True
        if resource is None:
            return False
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return limit != resource.RLIM_INFINITY and path.exists() and path.stat().st_size >= limit
    except OSError:
        return False


def failure(what: str, path: Path, stderr: str, written: Path | None = None) -> UserError:
    """A failed write: `path` is what the user asked for; `written` the file ffmpeg was
    writing, if another."""
    msg = last_line(stderr)
    if "No space left" in stderr or "File too large" in stderr or _out_of_space(written or path):
        return disk_full(path, msg)
    return UserError(f"ffmpeg failed while {what} {path}: {msg or 'it gave no reason'}",
                     "check the output folder and free disk space")
