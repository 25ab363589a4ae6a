"""The state folder beside a render's output (`OUT.mp4.zoomdream/`): what a render needs to
survive Ctrl-C, a crash, SIGKILL or a power cut, and to resume to the identical video.

    lock            one render per output (an flock the kernel drops when the process dies)
    checkpoint.pt   RenderState: where the frame loop stands, and which parts are complete
    part-NNNNN.mp4  the video in parts, each closed at a checkpoint
    pending/        lossless copies of the frames after the last complete part

The checkpoint file is MAGIC, the SHA-256 of the body, then the body (torch.save of plain
tensors, numbers and strings): a truncated or bit-flipped file is refused in one line instead
of resuming from wrong data into a wrong video."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from ..base.errors import UserError, write_error

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_VERSION = 7
MAGIC = b"zoomdream-checkpoint\n"
PENDING = "pending"


def state_dir(output: Path) -> Path:
    return output.with_name(output.name + ".zoomdream")


def remove(paths: Iterable[Path]) -> None:
    """Delete files and folders (what is not there is no error)."""
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def clear(sdir: Path) -> None:
    """--overwrite: drop what an earlier render left in its state folder (the lock stays: it
    is ours)."""
    remove(f for f in sdir.iterdir() if f.name != StateLock.NAME)


class StateLock:
    """One render per output: an exclusive flock on a file in the state folder. The kernel
    drops a flock when its process dies, so a killed render never leaves a stale lock."""

    NAME = "lock"

    def __init__(self, sdir: Path, output: Path):
        self.fd = os.open(sdir / self.NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(self.fd, 32).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise UserError(f"{output} is being rendered right now by another zoomdream (pid {pid})",
                            "wait for it to finish or stop it, or choose another -o path") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Video(Protocol):
    """What a render carries from frame to frame: a zoom's (loops/zoom.VideoState) or footage's
    (loops/footage.FootageState). It knows the next frame to make, how to save itself in a
    checkpoint, and the figures the render reports."""

    @property
    def index(self) -> int: ...

    def to_dict(self) -> dict: ...

    @classmethod
    def from_dict(cls, d: dict, device: torch.device) -> Video: ...

    def figures(self) -> dict: ...


@dataclass
class RenderState:
    """Everything a render carries from frame to frame: the video in the making, the complete
    parts, and how many frames after them wait in pending/ (a part cut short)."""

    video: Video
    every: int  # frames per part: the boundaries are fixed for the whole render
    parts: list[tuple[str, int]] = field(default_factory=list)  # (file name, frames), complete ones
    pending: int = 0

    @property
    def complete(self) -> int:
        """Frames of the video in complete parts."""
        return sum(n for _, n in self.parts)

    @property
    def shown(self) -> int:
        """Frames of the video that exist: in complete parts or pending."""
        return self.complete + self.pending

    def to_checkpoint(self, digest: str) -> dict:
        return {"version": CHECKPOINT_VERSION, "hash": digest, "index": self.video.index, "video": self.video.to_dict(),
                "every": self.every,
                "parts": [list(p) for p in self.parts], "pending": self.pending}

    @classmethod
    def from_checkpoint(cls, ck: dict, device: torch.device, kind: type[Video]) -> RenderState:
        return cls(kind.from_dict(ck["video"], device), ck["every"], [(name, n) for name, n in ck["parts"]],
                   ck["pending"])


def save_checkpoint(obj: dict, path: Path) -> None:
    """Write atomically and durably: temp file, fsync, rename, fsync of the folder. A kill
    mid-write leaves the old checkpoint whole; a power cut leaves the old or the new."""
    tmp = path.with_name(path.name + ".tmp")
    # Serialised in memory first: torch.save writing straight to a full disk fails with an
    # opaque RuntimeError from its zip writer, a plain write with ENOSPC.
    buf = io.BytesIO()
    torch.save(obj, buf)
    body = buf.getvalue()
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + hashlib.sha256(body).digest() + body)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """The rename lives in the folder's own data: without this a power cut can lose it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported here (Windows): the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path) -> dict:
    fix = "run with --overwrite to start the render again"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read checkpoint {path} ({e.strerror})", fix) from None
    if not data.startswith(MAGIC):
        raise UserError(f"checkpoint {path} is from another zoomdream version or not a checkpoint", fix)
    digest, body = data[len(MAGIC) : len(MAGIC) + 32], data[len(MAGIC) + 32 :]
    if hashlib.sha256(body).digest() != digest:
        raise UserError(f"checkpoint {path} is damaged (checksum mismatch: truncated or corrupted on disk)", fix)
    try:
        ck = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"checkpoint {path} is unreadable ({type(e).__name__})", fix) from None
    if not isinstance(ck, dict) or ck.get("version") != CHECKPOINT_VERSION:
        raise UserError(f"checkpoint {path} is from another zoomdream version", fix)
    return ck
