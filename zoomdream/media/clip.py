"""Reading videos: what a file holds (probe) and its frames, one at a time, fitted to the
output size (read) or as they are (frames, middle_frame). All go through the ffmpeg binary that
writes our videos, so every container and codec it decodes works, and its errors become one
line each.

Frames are decoded as they are needed from a pipe (memory stays flat however long the video),
upright (ffmpeg applies a phone's rotation flag itself), in passthrough timing: the nth frame
read is the nth frame of the stream, which is what makes a resumed video identical."""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.paths import IMAGE_SUFFIXES, input_file
from ..base.settings import VIDEO_MIN_SIDE
from .ffmpeg import damaged, info, run, start

# Demuxers that read a single picture: given where a video belongs, that is a mistake to name.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "jpegls_pipe",
                  "pam_pipe", "ppm_pipe", "qoi_pipe")
# Audio codecs an MP4 holds as they are; others (PCM from a .mov, Vorbis from a .webm) become AAC.
MP4_AUDIO = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")


@dataclass(frozen=True)
class Clip:
    """A video file as it will be read: its displayed size, frame rate, and the frames and
    audio between `start` and `end` (seconds)."""

    path: Path
    width: int  # as shown (after the rotation flag)
    height: int
    fps: float
    frames: int  # frames from start to end
    duration: float  # seconds of the whole file
    start: float = 0.0
    end: float | None = None
    audio: str | None = None  # the first audio stream's codec, if any
    stream: int = 0  # which video stream: a song's cover picture is one too, and is skipped
    sar: float = 1.0  # the shape of a stored pixel (2: shown twice as wide); width counts shown pixels

    @property
    def trimmed(self) -> bool:
        return self.start > 0 or self.end is not None

    def fitted(self, width: int, height: int) -> tuple[int, int]:
        """The largest size of the clip's shape inside width×height, never larger than the clip
        (sides rounded down to even, as H.264 needs) unless a side would be under the smallest
        video: then the whole shape is scaled up to it, not one side stretched."""
        s = min(1.0, width / self.width, height / self.height)
        s = max(s, VIDEO_MIN_SIDE / min(self.width, self.height))
        return tuple(max(VIDEO_MIN_SIDE, math.floor(v * s / 2 + 1e-6) * 2)  # type: ignore[return-value]
                     for v in (self.width, self.height))

    @property
    def shown(self) -> list[str]:
        """Filters that turn stored pixels into square ones as the clip is shown (SAR ≠ 1)."""
        return [] if self.sar == 1 else [f"scale={self.width}:{self.height}:flags=lanczos", "setsar=1"]


def _trim(start: float, end: float | None) -> list[str]:
    # Input options: ffmpeg seeks, then decodes and drops frames up to `start` exactly.
    return (["-ss", f"{start:.6f}"] if start > 0 else []) + (["-to", f"{end:.6f}"] if end is not None else [])


def probe(path: str | Path, start: float = 0.0, end: float | None = None) -> Clip:
    """What `path` holds between start and end, or a one-line error: not a file, not a video,
    damaged or truncated, no frames, a start past its end."""
    whole = _header(path)
    p, duration = whole.path, whole.duration
    if duration and start >= duration:
        raise UserError(f"--start {start:g} is past the end of {p} ({duration:.2f} s)",
                        f"use a start below {duration:.2f}")
    if end is not None and end <= start:
        raise UserError(f"--end {end:g} is not after --start {start:g}", "make the end later than the start")
    # A GIF's header was counted already, for its rate.
    frames = whole.frames if whole.frames and not (start or end is not None) else _count(p, whole.stream, start, end)
    if frames == 0:
        where = f" between {start:g} s and {end if end is not None else duration:g} s" if start or end else ""
        raise UserError(f"{p} has no frames{where}", "give a longer video or another --start/--end")
    return replace(whole, frames=frames, start=start, end=end)


def _header(path: str | Path) -> Clip:
    """What ffmpeg's header of `path` says (its frame count not yet known, 0, except a GIF's)."""
    p = input_file(path, "input video")
    if p.suffix.lower() in IMAGE_SUFFIXES and p.suffix.lower() != ".gif":
        raise UserError(f"{p} is an image, not a video", f"to zoom into a photo: zoomdream render {p} -o out.mp4")
    text = info(p)
    fmt = re.search(r"^Input #0, (.+?), from ", text, re.M)
    if fmt is None:
        raise damaged(p, text)
    if any(f in _IMAGE_FORMATS for f in fmt.group(1).split(",")):
        raise UserError(f"{p} is an image, not a video", f"to zoom into a photo: zoomdream render {p} -o out.mp4")
    streams = list(re.finditer(r"Stream #0:\d+[^:]*: Video: (\w+).*?, (\d+)x(\d+)[, ].*", text))
    # A song's cover picture is a video stream of one frame, marked as such.
    moving = [(i, v) for i, v in enumerate(streams) if "(attached pic)" not in v.group(0)]
    if not moving:
        sound = re.search(r"Stream #0:\d+[^:]*: Audio:", text)
        what = "only sound" + (" and a cover picture" if streams else "") if sound else "no video stream"
        raise UserError(f"{p} has {what}", "give a video file")
    stream, video = moving[0]
    w, h = int(video.group(2)), int(video.group(3))
    aspect = re.search(r"SAR (\d+):(\d+)", video.group(0))
    sar = int(aspect.group(1)) / int(aspect.group(2)) if aspect and int(aspect.group(2)) else 1.0
    if sar <= 0 or not 0.1 <= sar <= 10:  # 0:1 is "unknown"; past 10 a header is wrong, not a picture
        sar = 1.0
    if sar != 1:
        w = max(2, round(w * sar / 2) * 2)
    rot = re.search(r"rotation of (-?[\d.]+) degrees", text)
    if rot and round(float(rot.group(1))) % 180 == 90:
        w, h = h, w
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    rate = re.search(r"([\d.]+)(k?) fps", video.group(0)) or re.search(r"([\d.]+)(k?) tbr", video.group(0))
    fps = float(rate.group(1)) * (1000 if rate.group(2) else 1) if rate else 0.0
    frames = 0
    if "gif" in fmt.group(1).split(",") and duration:  # its header rounds delays of 1/100 s: 30 fps reads 33.33
        frames = _count(p, stream, 0.0, None)
        fps = frames / duration
    ntsc = round(fps * 1.001)
    if abs(fps * 1.001 - ntsc) < 0.01 and abs(fps - ntsc) > 0.01:  # printed 23.98: it is 24000/1001
        fps = ntsc / 1.001
    if not 1 <= fps <= 240:
        raise UserError(f"{p} plays at {fps:g} frames per second", "give a video of 1 to 240 fps (re-export it)")
    audio = re.search(r"Stream #0:\d+[^:]*: Audio: (\w+)", text)
    return Clip(p, w, h, fps, frames, duration, audio=audio.group(1) if audio else None, stream=stream, sar=sar)


def _count(path: Path, stream: int, start: float, end: float | None) -> int:
    """Frames between start and end, counted by decoding them: a header's count can lie, and a
    truncated or damaged file is found here, before anything is dreamed."""
    r = run(["-nostdin", "-v", "error", "-progress", "pipe:1", "-nostats", *_trim(start, end), "-i", str(path),
              "-map", f"0:v:{stream}", "-fps_mode", "passthrough", "-f", "null", "-"])
    if "received no packets" in r.stderr:  # a video stream without a single frame
        return 0
    if r.returncode != 0 or r.stderr.strip():
        raise damaged(path, r.stderr)
    counts = re.findall(r"^frame=(\d+)", r.stdout, re.M)
    return int(counts[-1]) if counts else 0


def read(clip: Clip, width: int, height: int) -> Iterator[np.ndarray]:
    """The clip's frames as H×W×3 uint8, scaled to cover width×height and centre-cropped (as a
    photo is fitted), decoded one at a time. Closing the generator stops ffmpeg."""
    fit = [*clip.shown, f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=lanczos",
           f"crop={width}:{height}", "setsar=1"]
    return _decode(clip, width, height, ["-fps_mode", "passthrough", *_filters(fit)], clip.frames)


def read_frames(path: str | Path) -> list[np.ndarray]:
    """Every frame of a video as it decodes, at its own size (tests and checks: holds them all)."""
    clip = probe(path)
    return list(_decode(clip, clip.width, clip.height, ["-fps_mode", "passthrough", *_filters(clip.shown)],
                        clip.frames))


def _filters(chain: list[str]) -> list[str]:
    return ["-vf", ",".join(chain)] if chain else []


def middle_frame(path: str | Path) -> np.ndarray:
    """The frame in the middle of a video (H×W×3 uint8), or a one-line error; from the header's
    length, without decoding the whole video."""
    clip = _header(path)
    middle = replace(clip, frames=1, start=clip.duration / 2)
    return next(_decode(middle, clip.width, clip.height, ["-frames:v", "1", *_filters(clip.shown)], 1))


def _decode(clip: Clip, width: int, height: int, output: list[str], count: int) -> Iterator[np.ndarray]:
    """`count` frames of width×height from ffmpeg reading `clip` with the `output` options."""
    args = ["-nostdin", "-v", "error", *_trim(clip.start, clip.end), "-i", str(clip.path), "-map", f"0:v:{clip.stream}",
            *output, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    size = width * height * 3
    log = tempfile.TemporaryFile()  # not a pipe: unread, a chatty ffmpeg would block on it
    try:
        proc = start(args, stdout=subprocess.PIPE, stderr=log)
    except UserError:
        log.close()
        raise
    try:
        for n in range(count):
            buf = proc.stdout.read(size)  # type: ignore[union-attr]
            if len(buf) < size:
                proc.wait()
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise UserError(f"video {clip.path} ended at frame {n} of {count}"
                                + (f" ({err.strip().splitlines()[-1][:160]})" if err.strip() else ""),
                                "check the file is complete and was not changed during the render")
            yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        log.close()
