"""`zoomdream live`: the dream as it grows, in a local web page, steered by its controls or by
OSC, recorded as it goes and saved as a preset that `zoomdream render` makes at full size.

    controls   which numbers a page may set, from the settings' declarations      no torch
    journey    the values over frames, and the preset they make                  no torch
    net, osc   the sockets, bound before anything loads; OSC's addresses         no torch
    dreaming   the frame loop, reading a journey, in the main thread
    folder     the output folder (the only one written) and the child render
    session    the page's and OSC's messages turned into changes
    server     the page, its WebSocket, the token; `serve`

`serve_live` is the Python API; the command line is a thin adapter over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base.errors import UserError
from ..base.paths import input_file, output_folder
from ..base.settings import LiveOptions, RenderOptions, build, check, declared, parse_size, path_of
from ..timeline.presets import Preset, load_preset


def serve_live(photo: str | Path | None = None, preset: str | Path | Preset = "default", *,
               size: str | None = None, objective: str | None = None, device: str = "auto",
               weights: str | Path | None = None, source: str = "zoomdream.serve_live()", **keys: Any) -> Path | None:
    """Serve the live page until Ctrl-C (or SIGTERM), dreaming `preset` from `photo` at `size`
    (default: the preset's shape in 256×256 on a CPU, with cadence 2 unless `cadence` is given;
    1280×720 on a GPU). `keys` are LiveOptions (host, port, osc_port, osc, out, open) and preset
    keys (seed, cadence, momentum, fps, …). Everything is checked and the ports bound before
    torch loads. Returns the recording saved on the way out, if one was."""
    options = build(LiveOptions, {k: keys.pop(k) for k in declared(LiveOptions) if k in keys}, source)
    device = check(RenderOptions, "device", device, source)
    if photo is not None:
        input_file(photo, "start image")
    if weights is not None:
        input_file(weights, "weights file", "check the --weights path")
    live_size = None if size is None else parse_size(size, path_of("size", source), source)
    out = output_folder(options.out, "--out")
    p = load_preset(preset).with_overrides(source, objective=objective, **keys)
    if photo is None and p.start == "photo":
        raise UserError(f"preset '{p.name}' starts from a photo", "give a start image")
    out.mkdir(parents=True, exist_ok=True)

    from .net import listen, new_token
    from .osc import OscServer

    token = new_token(options.host)
    sock = listen(options.host, options.port)  # a port in use: one line before torch loads
    osc = OscServer(options.host, options.osc_port, token) if options.osc else None

    from .server import serve

    return serve(p, options, sock, osc, token, photo, live_size, device, weights,
                 cadence_given=keys.get("cadence") is not None)
