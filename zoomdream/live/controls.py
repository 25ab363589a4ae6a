"""What the page and OSC may change, generated from the settings' declarations: every number a
preset segment keyframes (the dream's and the camera's) and the loop's own (cadence, momentum,
colour). A new setting declared there is a new slider here, with its range and help; values
from a page or an OSC message go through the same checks as a preset's."""

from __future__ import annotations

from typing import Any

from ..base.errors import UserError
from ..base.settings import BY_OBJECTIVE, Choice, DreamSettings, Motion, Range, check, declared, error, help_text, show
from ..engine.catalog import net_info
from ..engine.objectives import INPUT, Objective, parse_objective
from ..timeline.presets import Preset

# The loop's settings a page may change (the preset's own, read by the loop at each dreamed frame).
LOOP_KEYS = ("cadence", "momentum", "color_strength")
GROUPS: tuple[tuple[str, type, tuple[str, ...]], ...] = (
    ("camera", Motion, tuple(declared(Motion))),
    ("dream", DreamSettings, tuple(declared(DreamSettings))),
    ("loop", Preset, LOOP_KEYS),
)
OWNER = {key: cls for _, cls, keys in GROUPS for key in keys}
# An objective is a line of text: past this it is a paste gone wrong, refused before parsing.
MAX_OBJECTIVE = 1000


def scale(r: Range) -> str:
    """How a slider spans its range: log where it spans decades above 0 (zoom 0.01–100), cubic
    where it is symmetric about 0 (rotate ±3600: fine near 0, the ends still reachable)."""
    if r.lo is not None and r.lo > 0 and r.hi is not None and r.hi / r.lo >= 100:
        return "log"
    if r.lo is not None and r.hi is not None and r.lo < 0 < r.hi:
        return "cubic"
    return "linear"


def controls() -> list[dict[str, Any]]:
    """Every control the page draws: key, group, type, range, slider scale and help."""
    out = []
    for group, cls, keys in GROUPS:
        fields = declared(cls)
        for key in keys:
            r = fields[key].metadata["check"]
            common = {"key": key, "group": group, "label": key.replace("_", " "), "help": help_text(cls, key),
                      "by_objective": key in BY_OBJECTIVE}
            if isinstance(r, Choice):  # a menu
                out.append({**common, "choices": list(r.choices)})
                continue
            assert isinstance(r, Range), key  # every other live control is a number
            out.append({**common, "int": r.kind is int, "lo": r.lo, "hi": r.hi, "open_lo": r.open_lo,
                        "zero": r.zero, "scale": scale(r)})
    return out


def checked_value(key: Any, value: Any, source: str) -> int | float | str:
    """A control's new value, checked as a preset's would be, or the one-line error."""
    if not isinstance(key, str) or key not in OWNER:
        raise UserError(f"{source}: unknown control {show(key)}", f"use one of {', '.join(OWNER)}")
    return check(OWNER[key], key, value, source, path=key)


def checked_objective(text: Any, model: str, uploads: set[str], has_photo: bool, source: str) -> Objective:
    """An objective typed into the page or sent over OSC: the CLI's parser and name checks, and
    images only from what was uploaded (or INPUT, the start image): no path on this machine."""
    if not isinstance(text, str):
        raise error(source, "objective", f"must be text, got {show(text)}", 'write e.g. "features.13"')
    if len(text) > MAX_OBJECTIVE:
        raise error(source, "objective", f"is {len(text)} characters long", f"keep it under {MAX_OBJECTIVE}")
    try:
        obj = parse_objective(text)
        for path, what in obj.files:
            if path == INPUT and not has_photo:
                raise UserError(f"names {INPUT} as its {what}, but this dream has no start image",
                                "upload one as the start image first")
            if path != INPUT and path not in uploads:
                raise UserError(f"names the file {show(path)} as its {what}; the page may name only an uploaded "
                                f"image or {INPUT}", "upload the image and use the name it is given "
                                "(e.g. guide:upload-1.png@features.10)")
        obj.check(net_info(model))
    except UserError as e:
        raise error(source, "objective", e.problem, e.fix or "") from None
    return obj
