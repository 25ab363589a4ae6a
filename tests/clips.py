"""Footage made by the tests: a camera path over a public-domain photo with an object that
crosses it (so that there is occlusion), written through ffmpeg with a generated tone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from zoomdream.media.ffmpeg import ffmpeg_exe


def camera_path(frames: int, width: int, height: int, static: bool = False) -> list[np.ndarray]:
    """H×W×3 uint8 frames: the camera pans across scikit-image's cat and zooms in a little
    while a coffee cup (another sample picture, cut to a disc) crosses the frame faster than
    the camera moves. `static`: the first frame, every time."""
    from skimage import data

    bg = cv2.resize(data.chelsea(), (902, 600), interpolation=cv2.INTER_CUBIC)
    cup = cv2.resize(data.coffee()[60:340, 120:480], (90, 70), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:70, 0:90]
    disc = ((xx - 45) / 45) ** 2 + ((yy - 35) / 35) ** 2 <= 1
    s = 256 / width  # the same view at any size
    out = []
    for t in range(frames):
        u = 0.0 if static else t / max(frames - 1, 1)
        z = 1.0 + 0.25 * u
        cw, ch = 2.2 * 256 / z, 2.2 * 256 * height / width / z
        cx, cy = 260 + 300 * u, 300 - 60 * u
        m = np.float32([[cw / width, 0, cx - cw / 2], [0, ch / height, cy - ch / 2]])
        f = cv2.warpAffine(bg, m, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)
        cw_, ch_ = max(1, round(90 / s)), max(1, round(70 / s))
        c, d = cv2.resize(cup, (cw_, ch_)), cv2.resize(disc.astype(np.uint8), (cw_, ch_)) > 0
        ox, oy = (width // 3 if static else int(-cw_ + (width + cw_) * u)), int(height * 0.45)
        x0, x1 = max(ox, 0), min(ox + cw_, width)
        if x1 > x0:
            sub = f[oy : oy + ch_, x0:x1]
            dd, cc = d[: sub.shape[0], x0 - ox : x1 - ox], c[: sub.shape[0], x0 - ox : x1 - ox]
            sub[dd] = cc[dd]
        out.append(np.ascontiguousarray(f))
    return out


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 24, tone: float | None = None,
               faststart: bool = False) -> Path:
    """An H.264 MP4 of `frames` (near lossless), with `tone` seconds of a 440 Hz sine as AAC."""
    h, w = frames[0].shape[:2]
    audio = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={tone}"] if tone else []
    cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
           "-i", "-", *audio, "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p",
           *(["-c:a", "aac"] if tone else []), *(["-movflags", "+faststart"] if faststart else []), str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


def audio_samples(path: Path) -> np.ndarray:
    """The first audio stream decoded by ffmpeg, mono float32 at 44.1 kHz."""
    r = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", "44100",
                        "-f", "f32le", "-"], capture_output=True, check=True)
    return np.frombuffer(r.stdout, np.float32)


def click_track(seconds: float, bpm: float, rate: int = 44100, first: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(samples, click times): short 1 kHz clicks on every beat from `first` on, over a quiet
    bed of noise so that nothing is exactly silent."""
    y = (0.005 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(np.float32)
    times = np.arange(first, seconds - 0.05, 60 / bpm)
    k = np.arange(int(0.02 * rate))
    click = 0.8 * np.sin(2 * np.pi * 1000 * k / rate) * np.exp(-k / (0.004 * rate))
    for t in times:
        i = int(round(t * rate))
        y[i : i + len(k)] += click[: len(y) - i]
    return y, times


def write_audio(path: Path, samples: np.ndarray, rate: int = 44100) -> Path:
    """Mono float samples as a file ffmpeg writes (the codec from the suffix: .wav, .mp3, .m4a…)."""
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-",
                    str(path)], input=samples.astype(np.float32).tobytes(), check=True)
    return path


def song(seconds: float, rate: int = 44100) -> np.ndarray:
    """A made-up track at 120 BPM: a kick on every beat, a bass line that walks every 2 s and
    comes in after the first quarter, hi-hats between the kicks, a quiet noise bed."""
    t = np.arange(int(seconds * rate)) / rate
    y = 0.5 * np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) * 20)
    y += 0.2 * np.sin(2 * np.pi * (82 + 27 * ((t // 2) % 3)) * t) * (t >= seconds / 4)
    y += 0.05 * np.random.default_rng(0).standard_normal(len(t)) * (((t + 0.25) % 0.5) < 0.03)
    y += 0.01 * np.random.default_rng(1).standard_normal(len(t))
    return y.astype(np.float32)


LOOK_PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def look_inputs(size: int) -> dict[str, np.ndarray]:
    """Four of scikit-image's photos (H×W×3 float, long side `size`) and the default preset's
    noise: what the preconditioning is judged on (bench, look; scripts/precondition_grid.py)."""
    import torch
    from skimage import data

    from zoomdream.engine.images import resize_long_side, to_numpy
    from zoomdream.loops.zoom import start_frame

    out = {name: resize_long_side(getattr(data, name)().astype(np.float32) / 255, size) for name in LOOK_PHOTOS}
    out["noise"] = to_numpy(start_frame(size, size, "noise", 0, torch.device("cpu")))
    return out
