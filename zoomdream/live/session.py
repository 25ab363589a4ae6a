"""One live session: the dream, what was uploaded, what was saved, the render in progress.

The page's WebSocket messages and OSC's come here as the same small dicts ({"type": "set",
"key": "zoom", "value": 1.4}, …) and go through the same checks: a bad one gets a one-line
message and changes nothing. Nothing a message says names a file on this machine: presets are
the shipped ones by name, images are uploads the session named, and everything written goes
into the output folder under a name the session chooses."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.errors import UserError
from ..base.settings import check, parse_size, show
from ..engine.catalog import LAYERS
from ..engine.objectives import INPUT, KINDS
from ..media.codecs import CODECS
from ..timeline.presets import Preset, load_preset, preset_paths, preset_toml
from .controls import checked_objective, checked_value, controls
from .dreaming import LiveDream, Shown, Take
from .folder import ChildRender, Folder
from .journey import OBJECTIVE, Journey, first_frame

PAGE = "page"


class Session:
    """The dream of one `zoomdream live`, the folder it writes, and the render it runs."""

    def __init__(self, preset: Preset, out: Path, size: tuple[int, int], device: torch.device,
                 broadcast: Callable[[dict], None], publish: Callable[[Shown], None],
                 log: Callable[[str], None], weights: str | None = None):
        self.folder = Folder(out)
        self.base, self.render_size = preset, (preset.width, preset.height)
        self.broadcast, self.log, self.device = broadcast, log, device
        self.dream = LiveDream(device, size, publish, self._failed, weights)
        self.child = ChildRender(self.folder, broadcast)
        self.saved: tuple[Journey, int] | None = None

    # ------------------------------------------------------------------ takes

    def start(self, photo: np.ndarray | None = None, photo_name: str | None = None,
              preset: Preset | None = None, values: dict | None = None) -> Take:
        """A new take from frame 0: of `preset` (default the current one), from `photo`, with
        `values` in place of the preset's first-frame ones."""
        preset = preset or self.base
        if photo is None and preset.start == "photo":
            raise UserError(f"preset '{preset.name}' starts from a photo", "upload a start image first")
        journey = Journey(preset, values)
        take = self.dream.take(preset, journey, photo, photo_name, {k: v for k, (v, _) in self.folder.uploads.items()})
        self.base = preset
        return take

    def _current(self) -> Take:
        take = self.dream.current
        assert take is not None
        return take

    def _failed(self, message: str) -> None:
        self.log(message)
        self.broadcast({"type": "error", "field": OBJECTIVE, "message": message})

    # ------------------------------------------------------------------ messages

    def set(self, key: Any, value: Any, source: str) -> dict:
        value = checked_value(key, value, source)
        return {"type": "set", "key": key, "value": value, "frame": self._current().journey.set(key, value)}

    def objective(self, text: Any, source: str) -> dict:
        take = self._current()
        obj = checked_objective(text, self.base.model, set(self.folder.uploads), take.photo is not None, source)
        take.dreamer.bound(obj)  # its images' features, now: the loop does not wait for them
        return {"type": OBJECTIVE, "text": str(obj), "frame": take.journey.set(OBJECTIVE, obj)}

    def preset(self, name: Any, source: str) -> None:
        """A new take of a shipped preset (by name: a page names no file), from the same start."""
        if not isinstance(name, str) or name not in preset_paths():
            raise UserError(f"{source}: unknown preset {show(name)}", "pick one of the shipped presets")
        take = self._current()
        self.start(None if take.photo is None else self.folder.uploads[take.photo][0], take.photo, load_preset(name))
        self.render_size = (self.base.width, self.base.height)
        self.broadcast(hello(self))

    def restart(self, start: Any, source: str) -> None:
        """A new take with the values now in effect: from the same start, or from an upload
        (its name), or from the preset's own start ("preset")."""
        take, last = self.dream.current, self.dream.last
        if take is None:  # the first take
            photo = None if start in ("same", "preset") else self.folder.uploads[start][0]
            self.start(photo, None if photo is None else start)
            return
        values = take.journey.values(last.n if last else 0)
        if start == "same":
            name = take.photo
        elif start == "preset":
            name = None
        elif isinstance(start, str) and start in self.folder.uploads:
            name = start
        else:
            raise UserError(f"{source}: unknown start image {show(start)}", "upload it first")
        photo = None if name is None else self.folder.uploads[name][0]
        if name is None and any(path == INPUT for path, _ in values[OBJECTIVE].files):
            values[OBJECTIVE] = first_frame(self.base).objective  # INPUT was the start image, now gone
        self.start(photo, name, values=values)
        self.broadcast(hello(self))

    # ------------------------------------------------------------------ uploads

    def upload(self, data: bytes, as_start: bool, what: str = "the uploaded file") -> dict:
        """An image from the page (Folder.upload), which objectives may use from now on;
        `as_start`: also a new take from it; `what` names it in messages."""
        name, image = self.folder.upload(data, what)
        self.dream.add_image(name, image)
        if as_start:
            self.restart(name, PAGE)
        else:
            self.broadcast({"type": "uploads", "uploads": sorted(self.folder.uploads)})
        return {"type": "uploaded", "name": name, "width": image.shape[1], "height": image.shape[0]}

    # ------------------------------------------------------------------ saving and rendering

    def unsaved(self) -> bool:
        last, take = self.dream.last, self.dream.current
        if last is None or take is None or last.n < 1:
            return False
        return self.saved is None or self.saved[0] is not take.journey or self.saved[1] < last.n + 1

    def save(self) -> Path:
        """The take so far as a preset in the output folder: its frames, its changes, its
        seed and start image, at the preset's full size."""
        take, last = self._current(), self.dream.last
        end = (last.n + 1) if last else 1
        paths = {name: str(path.resolve()) for name, (_, path) in self.folder.uploads.items()}
        text = preset_toml(take.journey.preset_data(end, self.render_size, paths, take.photo),
                           f"Recorded by zoomdream live on {time.strftime('%Y-%m-%d %H:%M')}: {end} frames.\n"
                           "Render it with: zoomdream render -o out.mp4 --preset THIS.toml [--size WxH]")
        path = self.folder.save(text)
        load_preset(path)  # what was written reads back (a failure here is a bug, not the user's)
        self.saved = (take.journey, end)
        self.log(f"saved {end} frames as {path}")
        return path

    def render(self, size: Any, codec: Any, source: str) -> dict:
        """Save, then render that preset in a child process (ChildRender) with `codec`."""
        size = self.render_size if size in (None, "") else parse_size(size, "size", source)
        codec = self.base.codec if codec in (None, "") else check(Preset, "codec", codec, source)
        if self.child.running:
            raise UserError(f"{source}: a render is running", "wait for it to finish")
        preset = self.save()
        video = self.child.start(preset, size, str(self.device), codec)
        return {"type": "render", "state": "started", "file": video, "preset": preset.name}

    def close(self) -> Path | None:
        """Stop the dream; an unsaved take is saved first (returned)."""
        saved = None
        if self.unsaved():
            try:
                saved = self.save()
            except UserError as e:
                self.log(f"could not save the recording: {e}")
        self.dream.stop()
        self.child.wait(20)
        return saved


def handle(session: Session, msg: Any, source: str) -> dict | None:
    """One message from a page or OSC: the reply to its sender (None: nothing to say); a bad
    one gets a one-line error and changes nothing. Every page sees a change in its frames."""
    try:
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise UserError(f"{source}: cannot read message {show(msg)}", 'send {"type": …}')
        kind = msg["type"]
        if kind == "set":
            return session.set(msg.get("key"), msg.get("value"), source)
        if kind == OBJECTIVE:
            return session.objective(msg.get("text"), source)
        if kind in ("pause", "resume"):
            session.dream.pause(kind == "pause")
            session.broadcast({"type": "paused", "paused": kind == "pause"})
        elif kind == "restart":
            session.restart(msg.get("start", "same"), source)
        elif kind == "preset":
            session.preset(msg.get("name"), source)
        elif kind == "save":
            return {"type": "saved", "file": session.save().name}
        elif kind == "render":
            return session.render(msg.get("size"), msg.get("codec"), source)
        else:
            raise UserError(f"{source}: unknown message type {show(kind)}",
                            "use set, objective, pause, resume, restart, preset, save or render")
        return None
    except UserError as e:
        field = msg.get("key") or msg.get("type") if isinstance(msg, dict) else None
        return {"type": "error", "field": field if isinstance(field, str) else None, "message": str(e)}


def hello(session: Session) -> dict:
    """Everything a page needs to draw itself."""
    take, last, base, dream = session.dream.current, session.dream.last, session.base, session.dream
    assert take is not None
    w, h = session.render_size
    return {"type": "hello", "controls": controls(), "values": _jsonable(take.journey.values(last.n if last else 0)),
            "presets": {name: load_preset(name).description for name in preset_paths()}, "preset": base.name,
            "layers": [i.name for i in LAYERS[base.model]], "kinds": [k.syntax for k in KINDS.values()],
            "uploads": sorted(session.folder.uploads), "photo": take.photo, "paused": dream.paused,
            "size": list(dream.size), "fps": base.fps, "render_size": f"{w}x{h}", "files": sorted(session.folder.files),
            "codecs": [{"name": c.name, "help": c.what} for c in CODECS.values()], "codec": base.codec}


def _jsonable(values: dict) -> dict:
    return {k: (str(v) if k == OBJECTIVE else v) for k, v in values.items()}


def dumps(msg: dict) -> str:
    return json.dumps(msg, allow_nan=False, default=str)
