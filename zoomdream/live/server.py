"""The live page's server: starlette on uvicorn, one WebSocket per page.

    GET  /              the page (page/index.html, live.js, live.css: no build step)
    WS   /ws            frames out (a JSON line, then the JPEG), messages both ways
    GET  /snapshot.png  the frame now shown
    POST /upload        an image (the body), ?start=1 to dream from it
    GET  /files/NAME    a preset or video this session wrote, and nothing else

Loopback needs no token but only answers to a loopback Host (a page elsewhere cannot reach it by
rebinding a name to 127.0.0.1); any other address needs the token on every request, WebSocket
and OSC message. A WebSocket opened by another site's page (its Origin) is refused either way."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..base.errors import UserError
from ..base.settings import LiveOptions
from ..timeline.presets import Preset
from .dreaming import Shown
from .dreaming import png as frame_png
from .osc import OscServer
from .folder import MAX_UPLOAD
from .session import PAGE, Session, dumps, handle, hello

PAGE_DIR = Path(__file__).with_name("page")
STATIC = {"": ("index.html", "text/html"), "live.js": ("live.js", "text/javascript"),
          "live.css": ("live.css", "text/css")}
TOKEN_HEADER = "x-zoomdream-token"


# ------------------------------------------------------------------------------ pages


@dataclass(eq=False)
class Page:
    """One connected page: it gets every message, and the newest frame when it is ready for one
    (a slow page skips frames rather than queueing them)."""

    ws: WebSocket
    messages: list[dict] = field(default_factory=list)
    frame: Shown | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def pump(self, fps: Callable[[], float]) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            messages, self.messages = self.messages, []
            for m in messages:
                await self.ws.send_text(dumps(m))
            shown, self.frame = self.frame, None
            if shown is not None:
                spf = shown.seconds_per_frame
                await self.ws.send_text(dumps({"type": "frame", "n": shown.n, "t": shown.n / fps(),
                                               "spf": spf, "fps": 1 / spf if spf > 0 else 0.0,
                                               "values": shown.values}))
                await self.ws.send_bytes(shown.jpeg)


class Hub:
    """Every connected page; `broadcast` and `publish` may be called from any thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pages: set[Page] = set()

    def broadcast(self, msg: dict) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._all, lambda p: p.messages.append(msg))

    def publish(self, shown: Shown) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._all, lambda p: setattr(p, "frame", shown))

    def _all(self, fn: Callable[[Page], None]) -> None:
        for p in self.pages:
            fn(p)
            p.wake.set()


# ------------------------------------------------------------------------------ guard


class Guard:
    """ASGI middleware: the token (when one is set) on every request and WebSocket; a loopback
    Host when serving loopback; a WebSocket only from this server's own page."""

    def __init__(self, app: Any, token: str | None):
        self.app, self.token = app, token

    def refused(self, scope: dict) -> str | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.token is not None:
            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
            given = headers.get(TOKEN_HEADER, given)
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return "forbidden: this server needs the token printed with its URL (?token=…)"
        elif urlsplit(f"//{host}").hostname not in ("127.0.0.1", "localhost", "::1"):
            return "forbidden: this server answers only to 127.0.0.1 and localhost"
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin is not None and urlsplit(origin).netloc != host:
            return "forbidden: a page from another site cannot open this WebSocket"
        return None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] in ("http", "websocket"):
            reason = self.refused(scope)
            if reason is not None:
                if scope["type"] == "http":
                    await PlainTextResponse(reason, status_code=403)(scope, receive, send)
                else:  # closed before the handshake: the client gets HTTP 403
                    await receive()
                    await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
                return
        await self.app(scope, receive, send)


# ------------------------------------------------------------------------------ the app


# The endpoints find the session and the pages on the app's state (`app`).


async def snapshot(request: Request) -> Response:
    last = request.app.state.session.dream.last
    try:
        png = await run_in_threadpool(frame_png, last)
    except UserError as e:
        return PlainTextResponse(str(e), status_code=409)
    name = f"zoomdream-frame-{last.n:06d}.png"
    return Response(png, media_type="image/png", headers={"content-disposition": f'attachment; filename="{name}"'})


async def upload(request: Request) -> Response:
    """An image as the request's body, refused unread past MAX_UPLOAD; ?start=1: dream from it."""
    size = request.headers.get("content-length")
    too_big = JSONResponse({"type": "error", "field": "upload",
                            "message": f"the upload is over {MAX_UPLOAD >> 20} MB: send a smaller image"}, status_code=413)
    if size is not None and (not size.isdigit() or int(size) > MAX_UPLOAD):
        return too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD:
            return too_big
    start = request.query_params.get("start") == "1"
    try:
        return JSONResponse(await run_in_threadpool(request.app.state.session.upload, bytes(body), start))
    except UserError as e:
        return JSONResponse({"type": "error", "field": "upload", "message": str(e)}, status_code=400)


async def files(request: Request) -> Response:
    path = request.app.state.session.folder.files.get(request.path_params["name"])
    if path is None or not path.is_file():
        return PlainTextResponse("no such file from this session", status_code=404)
    return FileResponse(path, filename=path.name)


async def ws(websocket: WebSocket) -> None:
    """One page: its messages in, through the session's checks; frames and replies out (Page)."""
    await websocket.accept()
    session, hub = websocket.app.state.session, websocket.app.state.hub
    page = Page(websocket)
    hub.pages.add(page)
    page.messages.append(hello(session))
    page.wake.set()
    pump = asyncio.create_task(page.pump(lambda: session.base.fps))
    try:
        while True:
            text = await websocket.receive_text()
            try:
                msg = json.loads(text)
            except ValueError:
                reply: dict | None = {"type": "error", "field": None, "message": "page: a message that is not JSON was refused"}
            else:
                reply = await run_in_threadpool(handle, session, msg, PAGE)
            if reply is not None:
                page.messages.append(reply)
                page.wake.set()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.pages.discard(page)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump


def app(session: Session, hub: Hub, token: str | None) -> Guard:
    """The ASGI app over `session` (made before the server starts), behind the Guard."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):
        hub.loop = asyncio.get_running_loop()
        yield

    routes = [*(Route(f"/{path}", _static(name, kind)) for path, (name, kind) in STATIC.items()),
              Route("/snapshot.png", snapshot), Route("/upload", upload, methods=["POST"]),
              Route("/files/{name:str}", files), WebSocketRoute("/ws", ws)]
    web = Starlette(routes=routes, lifespan=lifespan)
    web.state.session, web.state.hub = session, hub
    return Guard(web, token)


def _static(name: str, kind: str) -> Callable:
    async def serve(request: Request) -> Response:
        return FileResponse(PAGE_DIR / name, media_type=kind, headers={"cache-control": "no-store"})

    return serve


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ running it

# What feels live (bench, live): on the CPU a small frame with cadence, on a GPU 720p.
CPU_BOX, GPU_BOX = (256, 256), (1280, 720)
CPU_CADENCE = 2


def live_size(preset_size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The preset's shape inside `box`, even sides (never larger than the preset)."""
    w, h = preset_size
    s = min(1.0, box[0] / w, box[1] / h)
    return tuple(max(32, round(v * s / 2) * 2) for v in (w, h))  # type: ignore[return-value]


def serve(preset: Preset, options: LiveOptions, sock: socket.socket, osc: OscServer | None, token: str | None,
          photo: str | Path | None = None, size: tuple[int, int] | None = None, device: str = "auto",
          weights: str | Path | None = None, cadence_given: bool = False,
          log: Callable[[str], None] = say) -> Path | None:
    """Serve `zoomdream live` until Ctrl-C: the page on `sock` (net.listen), OSC on `osc`, the
    dream of `preset` from `photo`. Returns the recording saved on the way out, if one was."""
    import uvicorn

    from ..engine.models import resolve_device

    dev = resolve_device(device)
    if size is None:
        size = live_size((preset.width, preset.height), CPU_BOX if dev.type == "cpu" else GPU_BOX)
    if dev.type == "cpu" and not cadence_given:
        preset = replace(preset, cadence=max(preset.cadence, CPU_CADENCE))
    hub = Hub()
    session = Session(preset, Path(options.out), size, dev, hub.broadcast, hub.publish, log,
                      None if weights is None else str(weights))
    if photo is not None:
        session.upload(Path(photo).read_bytes(), as_start=True, what=f"input image {photo}")
    else:
        session.start()

    def refuse(message: str) -> None:
        log(message)
        hub.broadcast({"type": "error", "field": "osc", "message": message})

    def from_osc(msg: dict) -> None:
        reply = handle(session, msg, "OSC")
        if reply is not None and reply["type"] == "error":
            refuse(reply["message"])

    port = sock.getsockname()[1]
    shown_host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"http://{shown_host}:{port}/" + (f"?token={token}" if token else "")
    if osc is not None:
        osc.start(from_osc, refuse)
    config = uvicorn.Config(app(session, hub, token), log_level="warning", lifespan="on",
                            ws_max_size=1 << 16, timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    web = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="zoomdream-web", daemon=True)
    web.start()
    where = f"; OSC on UDP {options.host}:{osc.port}" if osc is not None else ""
    log(f"zoomdream live: {url} ({size[0]}x{size[1]} on {dev}{where}); Ctrl-C stops")
    if token:
        log("this address is reachable from the network: every request and OSC message needs the token above")
    if options.open:
        webbrowser.open(url)
    with stopping(session.dream.stop):
        session.dream.run()  # here, in the main thread, until Ctrl-C
    saved = session.close()
    if saved is not None:
        log(f"saved the recording as {saved}")
    if osc is not None:
        osc.close()
    server.should_exit = True
    web.join(timeout=10)
    return saved


@contextlib.contextmanager
def stopping(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C or SIGTERM: `stop` (the dream ends after its frame); a second Ctrl-C: at once."""
    def handler(sig: int, frame: Any) -> None:
        if handler.asked:  # type: ignore[attr-defined]
            raise KeyboardInterrupt
        handler.asked = True  # type: ignore[attr-defined]
        stop()

    handler.asked = False  # type: ignore[attr-defined]
    before = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        for s, h in before.items():
            signal.signal(s, h)
