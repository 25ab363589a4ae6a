"""A soundtrack's features, one value per video frame, for expressions to read (`zoom = "1.1 +
0.5*beat"`): decoded by ffmpeg, analysed by librosa (onset strength, beat tracking, a
spectrogram for loudness and bands), then resampled to the video's frame rate.

The features are declared here, in FEATURES, beside the code that computes them; the
expression reader (timeline/expressions.py) takes their names from it, so a new feature is an
entry there and its series in `analyse`. Each is normalised to 0..1 over the track (divided by
its largest value), so the same expression suits a quiet song and a loud one. This module
imports no torch (librosa loads when a track is analysed)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.paths import IMAGE_SUFFIXES, file_digest, input_file
from .ffmpeg import damaged, info, run

SAMPLE_RATE = 22050  # librosa's: enough for beats and bands up to 11 kHz, and half the work of 44.1k
HOP = 512  # 23 ms between analysis frames: finer than a video frame at up to 43 fps
BEAT_SECONDS = 0.1
BANDS = {"bass": (20.0, 250.0), "mid": (250.0, 2000.0), "treble": (2000.0, SAMPLE_RATE / 2)}
SILENT = 1e-4  # peak amplitude under -80 dBFS: nothing to follow
ANALYSIS_VERSION = 1  # bump when the features change: cached ones are then recomputed
CACHE = "audio.npz"

# What each feature is (its name is what expressions read), in the order plots show them.
FEATURES = {
    "beat": f"1 at the frame of each beat, decaying by e every {BEAT_SECONDS} s: a pulse",
    "onset": "onset strength: how sharply the sound changes (the strongest within each frame)",
    "rms": "loudness",
    **{name: f"mean spectral magnitude at {lo:g}–{hi:g} Hz" for name, (lo, hi) in BANDS.items()},
}
AUDIO_VARIABLES = tuple(FEATURES)


@dataclass
class Features:
    """A soundtrack analysed for a video of `frames` frames at `fps`."""

    path: Path
    seconds: float  # the whole track
    fps: float
    frames: int
    tempo: float  # beats per minute, as the beat tracker found it
    beats: np.ndarray  # beat times, seconds
    per_frame: dict[str, np.ndarray] = field(default_factory=dict)  # AUDIO_VARIABLES → values, 0..1
    start: float = 0.0  # where in the file the analysis starts, seconds

    def to_json(self) -> dict:
        return {"file": str(self.path), "seconds": self.seconds, "fps": self.fps, "frames": self.frames,
                "tempo": self.tempo, "beats": [round(float(b), 4) for b in self.beats],
                "beat_decay_seconds": BEAT_SECONDS,
                "per_frame": {k: [round(float(x), 4) for x in v] for k, v in self.per_frame.items()}}


def check_audio_file(path: str | Path) -> Path:
    """A file we can read that holds a sound stream, or a one-line error."""
    p = input_file(path, "audio file", "check the --audio path")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        raise UserError(f"--audio {p} is an image", "give a sound file (MP3, WAV, FLAC, AAC, or a video with sound)")
    text = info(p)
    if re.search(r"^Input #0, ", text, re.M) is None:
        raise damaged(p, text, "audio")
    if re.search(r"Stream #0:\d+[^:]*: Audio:", text) is None:
        raise UserError(f"{p} has no sound stream", "give a sound file, or a video that has sound")
    return p


def decode(path: Path, start: float = 0.0) -> np.ndarray:
    """The first sound stream from `start` seconds on, as mono float32 at SAMPLE_RATE."""
    seek = ["-ss", f"{start:.6f}"] if start > 0 else []
    r = run(["-nostdin", "-v", "error", *seek, "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(SAMPLE_RATE),
             "-f", "f32le", "-"], text=False)
    if r.returncode != 0 or r.stderr.strip():
        raise damaged(path, r.stderr.decode(errors="replace"), "audio")
    samples = np.frombuffer(r.stdout, np.float32)
    if samples.size < max(HOP * 2, SAMPLE_RATE // 10):
        raise UserError(f"audio {path} is empty or shorter than a tenth of a second", "give a longer sound file")
    if not np.isfinite(samples).all() or np.abs(samples).max() < SILENT:
        raise UserError(f"audio {path} is silent", "give a sound file with something to follow")
    return samples


def _normalised(x: np.ndarray) -> np.ndarray:
    top = float(x.max()) if x.size else 0.0
    return np.clip(x / top, 0.0, 1.0) if top > 0 else np.zeros_like(x)


def analyse(samples: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    """(features per analysis frame, beat times in seconds, tempo) of mono samples; the
    features are normalised once resampled to video frames (per_frame)."""
    import librosa

    sr = SAMPLE_RATE
    spec = np.abs(librosa.stft(samples, n_fft=2048, hop_length=HOP))
    onset = librosa.onset.onset_strength(y=samples, sr=sr, hop_length=HOP)
    tempo, beat_frames = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=HOP, trim=False)
    # Without trim the tracker pads its grid to the edges of the track (trim drops real first
    # beats too); a beat with little onset under it is such padding, or the track starting.
    if len(beat_frames):
        strength = onset[beat_frames]
        beat_frames = beat_frames[strength > 0.3 * np.median(strength)]
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    out = {"onset": onset, "rms": librosa.feature.rms(S=spec, frame_length=2048, hop_length=HOP)[0]}
    for name, (lo, hi) in BANDS.items():
        out[name] = spec[(freqs >= lo) & (freqs < hi)].mean(0)
    n = min(len(v) for v in out.values())
    # The onset flux peaks about a hop after a sound starts (it measures the change from the
    # hop before): measured on clicks, 34 ms late, 11 ms once moved back a hop.
    beats = np.maximum(librosa.frames_to_time(beat_frames, sr=sr, hop_length=HOP) - HOP / sr, 0.0)
    return {k: v[:n].astype(np.float64) for k, v in out.items()}, beats, float(np.atleast_1d(tempo)[0])


def per_frame(hops: dict[str, np.ndarray], beats: np.ndarray, fps: float, frames: int) -> dict[str, np.ndarray]:
    """The analysis resampled to the `frames` video frames the track lasts: onset as the
    strongest within each frame (a click shorter than a frame still counts), the others at
    the frame's middle; each normalised over them, the whole track."""
    hop_t = np.arange(len(hops["rms"])) * HOP / SAMPLE_RATE
    start = np.arange(frames) / fps
    mid = start + 0.5 / fps
    out = {k: np.interp(mid, hop_t, v) for k, v in hops.items() if k != "onset"}
    lo, hi = np.searchsorted(hop_t, start), np.searchsorted(hop_t, start + 1 / fps)
    onset = np.interp(mid, hop_t, hops["onset"])
    for i in np.nonzero(hi > lo)[0]:
        onset[i] = hops["onset"][lo[i] : hi[i]].max()
    out["onset"] = onset
    out = {k: _normalised(v) for k, v in out.items()}
    beat = np.zeros(frames)
    n = np.arange(frames)
    for b in np.round(beats * fps).astype(int):
        if 0 <= b < frames:
            after = n >= b
            beat[after] = np.maximum(beat[after], np.exp(-(n[after] - b) / (BEAT_SECONDS * fps)))
    out["beat"] = beat
    return {k: out[k] for k in AUDIO_VARIABLES}


def _key(path: Path, fps: float, frames: int, start: float) -> str:
    h = hashlib.sha256(file_digest(path))
    h.update(f"{fps}|{frames}|{start}|{ANALYSIS_VERSION}|{HOP}|{SAMPLE_RATE}|{BEAT_SECONDS}".encode())
    return h.hexdigest()


def features(path: str | Path, fps: float, frames: int | None = None, cache: Path | None = None,
             start: float = 0.0) -> Features:
    """The soundtrack at `path`, from `start` seconds on, analysed for `frames` frames at `fps`
    (None: as many as the track lasts; past its end every feature is 0). `cache`: a folder
    where the result is kept (a render's state folder), so that a resumed render does not
    analyse it again."""
    p = check_audio_file(path)
    if cache is not None and frames is not None and (cache / CACHE).is_file():
        try:
            with np.load(cache / CACHE, allow_pickle=False) as z:
                if str(z["key"]) == _key(p, fps, frames, start):
                    return Features(p, float(z["seconds"]), fps, frames, float(z["tempo"]), z["beats"],
                                    {k: z[k] for k in AUDIO_VARIABLES}, start)
        except (OSError, ValueError, KeyError):
            pass  # damaged or from another version: analysed again
    samples = decode(p, start)
    seconds = len(samples) / SAMPLE_RATE
    track = max(1, round(seconds * fps))
    frames = track if frames is None else frames
    hops, beats, tempo = analyse(samples)
    whole = per_frame(hops, beats, fps, track)  # normalised over the track, whatever part is shown
    cut = {k: np.pad(v[:frames], (0, max(0, frames - track))) for k, v in whole.items()}
    return Features(p, seconds, fps, frames, tempo, beats, cut, start)


def save(f: Features, cache: Path) -> None:
    """Keep the analysis in a render's state folder (see `features`)."""
    np.savez(cache / CACHE, key=_key(f.path, f.fps, f.frames, f.start), seconds=f.seconds, tempo=f.tempo,
             beats=f.beats, **f.per_frame)


def seconds(path: str | Path) -> float:
    """How long the sound stream lasts, as decoded."""
    return len(decode(check_audio_file(path))) / SAMPLE_RATE


def plot(f: Features, output: Path) -> None:
    """The features over time, one row each, beats marked: what will drive the motion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(f.frames) / f.fps
    fig, axes = plt.subplots(len(AUDIO_VARIABLES), 1, figsize=(12, 1.1 * len(AUDIO_VARIABLES) + 0.8), sharex=True)
    colours = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for i, (ax, name) in enumerate(zip(axes, AUDIO_VARIABLES)):
        c = colours[i % len(colours)]
        ax.fill_between(t, f.per_frame[name], color=c, alpha=0.35, linewidth=0)
        ax.plot(t, f.per_frame[name], color=c, linewidth=0.8)
        for b in f.beats:
            ax.axvline(b, color="black", alpha=0.12, linewidth=0.6)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_yticks([0, 1])
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1].set_xlabel("seconds")
    axes[0].set_title(f"{f.path.name}: {f.seconds:.1f} s, {len(f.beats)} beats, about {f.tempo:.0f} BPM "
                      f"(values per video frame at {f.fps:g} fps; grey lines: beats)", fontsize=10, loc="left")
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)


def write_json(f: Features, output: Path) -> None:
    output.write_text(json.dumps(f.to_json()), encoding="utf-8")
