"""Settings inside every video: what made it, carried as container metadata, so that a file
found a month later says which preset, seed, model, weights and inputs made it, and
`render --like FILE` makes it again.

The record is one JSON tag (`zoomdream`) beside a short `comment` any player shows: the
resolved preset as TOML (every default written out, every override applied, image paths made
absolute), the seed and model, the weights' and every input's SHA-256, the codec, the device
and the versions. A render that is interrupted carries it too."""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..base.version import VERSION
from ..base.errors import UserError
from ..base.paths import file_digest, input_file, toml_text
from ..engine.models import Network
from ..engine.objectives import INPUT
from ..media.codecs import CODECS, resolved_crf
from ..media.ffmpeg import tags
from ..timeline.presets import Preset, parse_preset, preset_data, preset_toml
from .jobs import FootageJob, RenderJob

TAG = "zoomdream"
FORMAT = 1  # the record's own version: a later zoomdream reads older records by it


def sha256(path: str | Path) -> str:
    return file_digest(Path(path)).hex()


def record(job: RenderJob, network: Network, digest: str) -> dict[str, Any]:
    """What made the video `job` writes."""
    preset = job.preset
    images = sorted({p for seg in preset.segments for p, _ in seg.objective.files if p != INPUT})
    paths = {p: str(Path(p).resolve()) for p in images}
    inputs = [("guide/style image", p) for p in images]
    footage = isinstance(job, FootageJob)
    if footage:
        inputs.insert(0, ("video", str(job.clip.path)))
    elif job.input is not None:
        inputs.insert(0, ("photo", str(job.input)))
    if job.audio is not None:
        inputs.append(("audio", str(job.audio)))
    photo = "" if footage or job.input is None else str(Path(job.input).resolve())
    resolved = dataclasses.replace(preset, photo=photo)
    codec = CODECS[preset.codec]
    rec: dict[str, Any] = {
        "format": FORMAT, "zoomdream": VERSION, "made": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "video" if footage else "render", "preset_name": preset.name,
        "preset": preset_toml(preset_data(resolved, paths), f"preset {preset.name}, as rendered"),
        "seed": preset.seed, "model": preset.model,
        "weights": {"kind": network.source.kind, "entry": network.source.entry,
                    "path": str(network.source.path) if network.source.path else None,
                    "given": None if job.weights is None else str(Path(job.weights).resolve()),
                    "sha256": sha256(network.source.path) if network.source.path else None},
        "inputs": [{"role": role, "path": str(Path(p).resolve()), "sha256": sha256(p)} for role, p in inputs],
        "codec": preset.codec, "pix_fmt": codec.pix_fmt(preset.pix_fmt), "crf": resolved_crf(preset.codec, preset.crf),
        "device": network.device.type, "torch": torch.__version__, "python": platform.python_version(),
        "settings_hash": digest,
    }
    if footage:
        c = job.clip
        rec["footage"] = {"flow": job.flow, "blend": job.blend, "start": c.start, "end": c.end}
    return rec


def video_tags(rec: dict[str, Any]) -> dict[str, str]:
    """The container tags: the record, and a line a player shows."""
    line = (f"made with zoomdream {rec['zoomdream']}: preset {rec['preset_name']}, seed {rec['seed']}, "
            f"{rec['model']} (zoomdream info FILE shows how to make it again)")
    return {TAG: json.dumps(rec, ensure_ascii=False, separators=(",", ":")), "comment": line}


def read_record(path: str | Path) -> dict[str, Any]:
    """The record a video carries, or one line saying why there is none."""
    p = input_file(path, "video")
    found = tags(p).get(TAG)
    if found is None:
        raise UserError(f"{p} carries no zoomdream settings (not made by zoomdream 0.2 or later, or re-encoded "
                        "by another tool)", "give a video zoomdream wrote")
    try:
        rec = json.loads(found)
        if not isinstance(rec, dict) or not isinstance(rec.get("preset"), str) or rec.get("format", 0) > FORMAT:
            raise ValueError("an unknown layout")
    except (ValueError, RecursionError, TypeError) as e:
        raise UserError(f"the zoomdream settings in {p} cannot be read ({e})",
                        "update zoomdream, or give a video it wrote") from None
    return rec


def recorded_preset(rec: dict[str, Any], path: str | Path) -> Preset:
    """The preset the record holds, exactly as it was rendered."""
    source = f"{path} (its settings)"
    return parse_preset(toml_text(rec["preset"], source), source)


def check_inputs(rec: dict[str, Any], path: str | Path) -> None:
    """Every file the video was made from is still there, with the same contents."""
    for item in rec.get("inputs", []):
        f = Path(item["path"])
        if not f.is_file():
            raise UserError(f"{path} was made from the {item['role']} {f}, which is no longer there",
                            "put the file back where it was")
        if sha256(f) != item["sha256"]:
            raise UserError(f"the {item['role']} {f} has changed since {path} was made (its SHA-256 differs)",
                            "restore the original file; a changed input would not give the same video")


def check_weights(rec: dict[str, Any], network: Network, path: str | Path) -> None:
    """The weights loaded are the ones the video was made with."""
    want = (rec.get("weights") or {}).get("sha256")
    if want and network.source.path and sha256(network.source.path) != want:
        raise UserError(f"the {rec['model']} weights at {network.source.path} are not the ones {path} was made with "
                        "(their SHA-256 differs)", "install the original weights, or give them with --weights")


def version_note(rec: Mapping[str, Any], path: str | Path | None) -> str | None:
    """A line for making `path` again under another zoomdream version: its settings read back,
    but the frames are this version's frame loop (0.3 changed every zoom's colours)."""
    made_by = rec.get("zoomdream")
    if made_by == VERSION:
        return None
    return f"note: {path} was made by zoomdream {made_by}; this is {VERSION}, whose frames can differ"


def describe(rec: dict[str, Any]) -> list[str]:
    """What `zoomdream info` prints above the preset."""
    w = rec.get("weights") or {}
    lines = [f"made       {rec.get('made', '?')} by zoomdream {rec.get('zoomdream', '?')} ({rec.get('command')}), "
             f"torch {rec.get('torch', '?')} on {rec.get('device', '?')}",
             f"preset     {rec.get('preset_name')}, seed {rec.get('seed')}, model {rec.get('model')}",
             f"weights    {w.get('kind')} {w.get('entry')}" + (f", sha256 {w['sha256'][:16]}…" if w.get("sha256") else ""),
             f"codec      {rec.get('codec')} {rec.get('pix_fmt')}" + (f" crf {rec['crf']}" if rec.get("crf") is not None
                                                                      else "")]
    lines += [f"input      {i['role']} {i['path']} (sha256 {i['sha256'][:16]}…)" for i in rec.get("inputs", [])]
    if "footage" in rec:
        lines.append("footage    " + ", ".join(f"{k} {v}" for k, v in rec["footage"].items()))
    return lines


def like_job(video: str | Path, output: str | Path, options: dict[str, Any],
             source: str = "zoomdream.render_like()") -> RenderJob:
    """The job that makes `video` again into `output`, from the settings it carries; refused
    in one line if any file it was made from is gone or changed (the weights are checked once
    they load). `options` are RenderOptions fields (device, resume, …)."""
    rec = read_record(video)
    check_inputs(rec, video)
    preset = recorded_preset(rec, video)
    inputs = {i["role"]: i["path"] for i in rec.get("inputs", [])}
    weights = (rec.get("weights") or {}).get("given")
    opts = {"weights": weights, **{k: v for k, v in options.items() if v is not None}}
    common = dict(like=rec, like_path=Path(video), source=source)
    if rec["command"] == "video":
        f = rec["footage"]
        job: RenderJob = FootageJob.from_request(
            inputs["video"], output, preset, size=f"{preset.width}x{preset.height}", source=source,
            footage={k: f[k] for k in ("flow", "blend", "start", "end")}, options=opts)
        return dataclasses.replace(job, **common)
    job = RenderJob.from_request(output, preset, inputs.get("photo"), audio=inputs.get("audio"), source=source,
                                 options=opts)
    return dataclasses.replace(job, **common)
