"""Print a hash of every frame of a short clip of each shipped preset, to show that a refactor
changes no frame: run it before and after, on the same machine, and compare.

    python scripts/frame_hashes.py                 # this checkout
    python scripts/frame_hashes.py --root ../old   # another checkout of zoomdream

The clips go through the command line (`render --frames-dir`), which every version has, and
the hashes are of the decoded pixels of the lossless PNG frames. Every preset gets the same
made-up soundtrack (`--audio`), which only those whose expressions read it (music) follow. The
hashes differ from one CPU to the next (oneDNN picks other kernels), which is why this is a
script and not a test."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_song(path: Path, seconds: float = 2.0, rate: int = 22050) -> Path:
    """A kick on every beat at 120 BPM over a low hum, as 16-bit WAV (numpy and the standard
    library only, so that it is the same for any checkout)."""
    t = np.arange(int(seconds * rate)) / rate
    y = 0.5 * np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) * 20) + 0.1 * np.sin(2 * np.pi * 110 * t)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="the zoomdream checkout to run")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", default="64x48")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(args.root.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        from skimage import data

        photo = Path(tmp) / "chelsea.png"
        Image.fromarray(data.chelsea()).save(photo)
        song = write_song(Path(tmp) / "song.wav")
        everything = hashlib.sha256()
        for preset in sorted(p.stem for p in (args.root / "presets").glob("*.toml")):
            frames = Path(tmp) / preset
            cmd = [sys.executable, "-m", "zoomdream", "render", str(photo), "-o", str(Path(tmp) / f"{preset}.mp4"),
                   "--preset", preset, "--frames", str(args.frames), "--size", args.size, "--frames-dir", str(frames),
                   "--audio", str(song), "--device", "cpu", "-q"]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
            if r.returncode != 0:
                raise SystemExit(f"{preset}: {r.stderr}")
            digests = [hashlib.sha256(np.asarray(Image.open(f)).tobytes()).hexdigest()[:12]
                       for f in sorted(frames.glob("*.png"))]
            everything.update("".join(digests).encode())
            print(f"{preset:<12} {len(digests)} frames  {' '.join(digests[:3])} … {digests[-1]}")
        print(f"all          {everything.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
