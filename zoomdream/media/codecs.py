"""The codecs a video can be written with, each declared once: its ffmpeg encoder, the pixel
formats and containers it fits, its quality scale, and the arguments that make it. Every mix
that cannot work (ProRes in an MP4, 4:2:0 ProRes, a crf for a codec without one) is refused
here in one line, before any frame is dreamed.

Figures (bench, codecs; default preset at 512², against the lossless frames) are in
docs/delivery.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base.errors import UserError
from ..base.settings import COMMAND_LINE, error, path_of

MP4_FAMILY = (".mp4", ".mov")  # the ISO family: an index (moov) to move before the data


@dataclass(frozen=True)
class Codec:
    name: str
    encoder: str
    pix_fmts: tuple[str, ...]  # the first is the default
    containers: tuple[str, ...]  # the first is the one suggested
    crf: tuple[int, int, int] | None  # (lowest, highest, default); None: no crf (intra, fixed quality)
    what: str  # for --help and the docs

    def args(self, pix_fmt: str, crf: int | None, speed: str, container: str) -> list[str]:
        """ffmpeg's output options for one part. No B-frames where the codec reorders frames:
        parts are joined by a stream copy, and reordering leaves each part's timestamps offset,
        which the concat demuxer turns into duplicated or dropped frames."""
        pf = {"rgb": "gbrp" if self.name != "ffv1" else "bgr0"}.get(pix_fmt, pix_fmt)
        q = [] if crf is None else ["-crf", str(crf)]
        if self.name == "h264":
            return ["-c:v", "libx264", "-preset", speed, "-bf", "0", *q, "-pix_fmt", pf]
        if self.name == "h265":
            tag = ["-tag:v", "hvc1"] if container in MP4_FAMILY else []  # what Apple's players look for
            return ["-c:v", "libx265", "-preset", speed, *q, "-pix_fmt", pf, *tag,
                    "-x265-params", "log-level=error:bframes=0"]
        if self.name == "av1":
            # preset 8: 22 ms a 512² frame on 2 cores, as fast as x264's medium, at a third of its
            # size (bench, codecs);
            # SVT-AV1 shows every frame it codes, so its stream has no reordering to undo.
            return ["-c:v", "libsvtav1", "-preset", "8", *q, "-pix_fmt", pf, "-svtav1-params", "lp=2"]
        if self.name == "vp9":
            # -b:v 0 makes crf the quality (constant quality, no bitrate cap); cpu-used 4 with row
            # threading: libvpx's speed that keeps up with a CPU dream.
            return ["-c:v", "libvpx-vp9", *q, "-b:v", "0", "-deadline", "good", "-cpu-used", "4", "-row-mt", "1",
                    "-pix_fmt", pf]
        if self.name == "prores":
            profile = "4" if pf.startswith("yuv444") else "3"  # 4444, or 422 HQ
            return ["-c:v", "prores_ks", "-profile:v", profile, "-vendor", "apl0", "-pix_fmt", pf]
        return ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1", "-pix_fmt", pf]  # ffv1: lossless

    def pix_fmt(self, asked: str) -> str:
        return self.pix_fmts[0] if asked == "auto" else asked


CODECS = {c.name: c for c in (
    Codec("h264", "libx264", ("yuv420p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"),
          (".mp4", ".mov", ".mkv"), (0, 51, 18), "H.264: plays everywhere (yuv420p); 10-bit and 4:4:4 for editing"),
    Codec("h265", "libx265", ("yuv420p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"),
          (".mp4", ".mov", ".mkv"), (0, 51, 20), "H.265/HEVC: for HEVC deliveries (tagged hvc1 for Apple's players)"),
    Codec("av1", "libsvtav1", ("yuv420p", "yuv420p10le"), (".mp4", ".webm", ".mkv"), (0, 63, 30),
          "AV1: the smallest files for the web"),
    Codec("vp9", "libvpx-vp9", ("yuv420p", "yuv444p", "yuv420p10le", "yuv444p10le"), (".webm", ".mp4", ".mkv"),
          (0, 63, 31), "VP9: WebM for the web"),
    Codec("prores", "prores_ks", ("yuv422p10le", "yuv444p10le"), (".mov", ".mkv"), None,
          "ProRes 422 HQ (yuv422p10le) or 4444 (yuv444p10le): for editors, intra-frame, large"),
    Codec("ffv1", "ffv1", ("rgb", "yuv444p", "yuv420p"), (".mkv",), None,
          "FFV1: lossless (rgb keeps every pixel exactly), for archives"),
)}


# Every format some codec takes, web-safe first: what browsers, phones and every editor play.
PIX_FMTS = ("auto", *dict.fromkeys(f for c in CODECS.values() for f in c.pix_fmts))


def container(output: str | Path) -> str:
    return Path(output).suffix.lower()


def check_delivery(codec: str, pix_fmt: str, crf: int | None, source: str = COMMAND_LINE) -> None:
    """The codec takes this pixel format and crf, or one line saying what it takes."""
    c = CODECS[codec]
    if pix_fmt != "auto" and pix_fmt not in c.pix_fmts:
        raise error(source, path_of("pix_fmt", source), f"{codec} has no pixel format {pix_fmt}",
                    f"use one of {', '.join(c.pix_fmts)} (or auto: {c.pix_fmts[0]})")
    if crf is None:
        return
    if c.crf is None:
        raise error(source, path_of("crf", source), f"{codec} has no crf (its quality is fixed)",
                    "leave crf out, or use a codec with a quality scale (h264, h265, av1, vp9)")
    lo, hi, _ = c.crf
    if not lo <= crf <= hi:
        raise error(source, path_of("crf", source), f"{codec}'s crf runs from {lo} to {hi}, got {crf}",
                    f"use a crf from {lo} to {hi} (default {c.crf[2]})")


def check_container(codec: str, output: str | Path) -> None:
    """The output's file type holds the codec, or one line naming one that does."""
    c, ext = CODECS[codec], container(output)
    if ext not in c.containers:
        fits = [name for name, other in CODECS.items() if ext in other.containers]
        raise UserError(f"{codec} does not go in a {ext or 'file without an extension'} file ({output})",
                        f"write {Path(output).with_suffix(c.containers[0]).name}"
                        + (f", or use --codec {' or '.join(fits)} for {ext}" if fits else ""))


def resolved_crf(codec: str, crf: int | None) -> int | None:
    """The crf a codec is run with: the one asked for, or the codec's default."""
    c = CODECS[codec]
    return None if c.crf is None else c.crf[2] if crf is None else crf


def audio_codec(output: str | Path) -> list[str]:
    """What a soundtrack is encoded as in this container: WebM holds only Opus and Vorbis."""
    if container(output) == ".webm":
        return ["-c:a", "libopus", "-b:a", "160k"]
    return ["-c:a", "aac", "-b:a", "192k"]


def index_first(output: str | Path) -> list[str]:
    """The muxer options that put the index before the data, so a browser plays the file while
    it downloads: faststart for MP4 and MOV, the cues at the front for Matroska and WebM."""
    return ["-movflags", "+faststart+use_metadata_tags"] if container(output) in MP4_FAMILY else ["-cues_to_front", "1"]
