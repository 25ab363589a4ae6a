"""OSC on UDP, for VJ software (TouchDesigner, Resolume, Max): the page's messages by address.

    /zoomdream/zoom 1.4                   any control, by its key (see the page)
    /zoomdream/objective "features.10"    the objective, checked like the page's
    /zoomdream/pause  /zoomdream/resume  /zoomdream/restart  /zoomdream/save
    /zoomdream/preset "journey"           a shipped preset

With a token (any --host but loopback) every message's first argument is the token. A bad
message is refused in one line on the terminal and in every page; the dream goes on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import OSCUDPServer

from ..base.errors import UserError

PREFIX = "/zoomdream/"
_BARE = ("pause", "resume", "restart", "save")
_TEXT = {"objective": "text", "preset": "name"}


def message(address: str, args: tuple[Any, ...]) -> dict:
    """An OSC message as the session's message (the same the page sends)."""
    if not address.startswith(PREFIX) or len(address) == len(PREFIX):
        raise UserError(f"OSC: unknown address {address[:60]!r}", f"use {PREFIX}CONTROL, e.g. {PREFIX}zoom 1.4")
    name = address[len(PREFIX):]
    if name in _BARE:
        return {"type": name}
    if len(args) != 1:
        raise UserError(f"OSC: {address} takes one value, got {len(args)}", f"send e.g. {address} 1.4")
    value = args[0]
    if name in _TEXT:
        return {"type": name, _TEXT[name]: value}
    if isinstance(value, float):
        # OSC floats are 32-bit: 1.4 arrives as 1.39999997…; its 7 significant digits are what was sent.
        value = float(f"{value:.7g}")
    return {"type": "set", "key": name, "value": value}


class OscServer:
    """A UDP socket bound now (so a port in use fails before anything loads), served in a
    thread once `start` is given the session's handler."""

    def __init__(self, host: str, port: int, token: str | None):
        self.token = token
        self._handle: Callable[[dict], None] | None = None
        self._refuse: Callable[[str], None] | None = None
        self._serving = False
        dispatcher = Dispatcher(strict_timing=False)  # a bundle dated next year must not park a thread
        dispatcher.set_default_handler(self._on)
        try:
            self.server = OSCUDPServer((host, port), dispatcher)
        except OSError as e:
            raise UserError(f"cannot listen for OSC on UDP {host}:{port} ({e.strerror or e})",
                            "choose another port with --osc-port N (0: any free port), or --no-osc") from None
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.port = self.server.server_address[1]

    def start(self, handle: Callable[[dict], None], refuse: Callable[[str], None]) -> None:
        """Serve: each message goes to `handle` as the session's message; `refuse` gets the
        one line for one that cannot be read."""
        self._handle, self._refuse, self._serving = handle, refuse, True
        threading.Thread(target=self.server.serve_forever, name="zoomdream-osc", daemon=True).start()

    def _on(self, address: str, *args: Any) -> None:
        assert self._handle is not None and self._refuse is not None
        try:
            if self.token is not None:
                if not args or args[0] != self.token:
                    raise UserError(f"OSC: {address[:60]} without the token refused",
                                    "send the token printed at start as the first argument")
                args = args[1:]
            self._handle(message(address, args))
        except UserError as e:
            self._refuse(str(e))
        except Exception as e:  # a bug must not stop the listener
            self._refuse(f"OSC: {address[:60]}: {type(e).__name__}: {e}")

    def close(self) -> None:
        if self._serving:
            self.server.shutdown()
        self.server.server_close()
