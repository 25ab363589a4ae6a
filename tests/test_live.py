"""`zoomdream live`: the real server in its own process, a page's WebSocket, OSC over UDP, a
real headless browser; and the pure parts (controls from the declarations, the journey and the
preset it makes) on their own."""

from __future__ import annotations

import io
import json
import math
import random
import shutil
import socket
import urllib.error
import urllib.request
from dataclasses import fields

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, run_main
from livepage import LiveServer, Page
from zoomdream.base.errors import UserError
from zoomdream.base.settings import PRECONDITIONS, keyframeable, segment_choices
from zoomdream.engine.objectives import parse_objective
from zoomdream.live.controls import LOOP_KEYS, checked_objective, checked_value, controls
from zoomdream.live.journey import NUMBERS, OBJECTIVE, Journey
from zoomdream.live.osc import message
from zoomdream.timeline.presets import load_preset, parse_preset, preset_toml

SIZE = "96x96"


def resolved(spec) -> dict:
    """A frame's numbers as the dream uses them (the objective's defaults filled in)."""
    d = spec.dream.resolved(spec.objective.defaults)
    return {**{f.name: getattr(d, f.name) for f in fields(d)}, **{f.name: getattr(spec.motion, f.name)
                                                                 for f in fields(spec.motion)}}


def close(a: float | str, b: float | str) -> bool:
    # A keyframe's value comes back through a + (b - a)·1: equal to within a few ulps.
    if isinstance(a, str) or isinstance(b, str):
        return a == b  # a choice (precondition)
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


# ------------------------------------------------------------------ pure parts


def test_every_declared_number_is_a_control():
    keys = [c["key"] for c in controls()]
    assert set(keys) == set(keyframeable()) | set(segment_choices()) | set(LOOP_KEYS)
    assert next(c for c in controls() if c["key"] == "precondition")["choices"] == list(PRECONDITIONS)
    zoom = next(c for c in controls() if c["key"] == "zoom")
    assert (zoom["lo"], zoom["hi"], zoom["scale"]) == (0.01, 100.0, "log")
    assert "Scale factor per second" in zoom["help"]
    assert next(c for c in controls() if c["key"] == "rotate")["scale"] == "cubic"
    assert next(c for c in controls() if c["key"] == "steps")["int"]


@pytest.mark.parametrize("key, value, words", [
    ("zoom", float("nan"), "finite"), ("zoom", "1.4", "must be a number"), ("zoom", 1e9, "from 0.01 to 100"),
    ("steps", 2.5, "whole number"), ("nope", 1, "unknown control"), ("zoom", None, "must be a number"),
    ("cadence", 0, "from 1 to 64")])
def test_bad_values_are_refused_in_one_line(key, value, words):
    with pytest.raises(UserError) as e:
        checked_value(key, value, "page")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_an_objective_from_a_page_names_no_file(tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (64, 64)).save(secret)
    for text in (f"guide:{secret}@features.10", "style:../x.png@features.4", f"features.10 + content:{secret}@features.4"):
        with pytest.raises(UserError, match="may name only an uploaded image"):
            checked_objective(text, "mobilenet_v2", set(), True, "page")
    assert checked_objective("guide:upload-1.png@features.10", "mobilenet_v2", {"upload-1.png"}, False, "page")
    with pytest.raises(UserError, match="no start image"):
        checked_objective("content:INPUT@features.4", "mobilenet_v2", set(), False, "page")
    with pytest.raises(UserError, match="unknown layer|features.99"):
        checked_objective("features.99", "mobilenet_v2", set(), False, "page")
    with pytest.raises(UserError, match="characters long"):
        checked_objective("features.1 + " * 2000, "mobilenet_v2", set(), False, "page")


def test_osc_addresses_are_the_pages_messages():
    assert message("/zoomdream/zoom", (1.399999976158142,)) == {"type": "set", "key": "zoom", "value": 1.4}
    assert message("/zoomdream/objective", ("features.10",)) == {"type": "objective", "text": "features.10"}
    assert message("/zoomdream/pause", ()) == {"type": "pause"}
    for address, args in (("/other/zoom", (1.0,)), ("/zoomdream/zoom", ()), ("/zoomdream/", (1,))):
        with pytest.raises(UserError, match="OSC"):
            message(address, args)


def test_a_journey_saved_as_a_preset_gives_every_frame_its_values():
    """Changes stamped as the loop reads frames (cadence 2, preempting and not), objectives as
    segments: the preset's schedule gives each frame the value the live run had."""
    base = load_preset("default").with_overrides(cadence=2)
    j = Journey(base)
    rng = random.Random(3)
    live = []
    for n in range(0, 160, 2):  # what dream_key reads: its frame, then the camera to the next one
        j.at(n)
        j.dreaming(True)
        if rng.random() < 0.3:
            j.set("zoom", round(rng.uniform(0.5, 3), 3))  # during a dream: that frame again
        if j.dreaming(False):
            j.again()
            j.at(n)
        j.motion(n), j.motion(n + 1)
        if rng.random() < 0.3:
            j.set("steps", rng.randint(1, 8))  # between dreams: the next frame not read
        if n in (40, 100):
            j.set(OBJECTIVE, parse_objective("features.10" if n == 40 else "class:goldfish"))
        if n == 120:
            j.set("blur", 0.7)  # a prior the objective set until now
        if n == 70:
            j.set("precondition", "decorrelated")  # a choice: a segment of its own
    live = [(j.at(n), j.values(n)) for n in range(150)]
    data = j.preset_data(150, (512, 512))
    assert [s["objective"] for s in data["segments"]] == ["features.13", "features.10", "features.10",
                                                          "class:goldfish"]
    assert [s.get("precondition") for s in data["segments"]] == [None, None, "decorrelated", "decorrelated"]
    preset = parse_preset(__import__("tomllib").loads(preset_toml(data)), "recorded")
    schedule = preset.schedule()
    assert preset.frames == 150 and preset.cadence == 2
    for n, (spec, _) in enumerate(live):
        got = schedule.at(n)
        assert str(got.objective) == str(spec.objective)
        want, have = resolved(spec), resolved(got)
        assert want["precondition"] == have["precondition"]
        assert all(close(want[k], have[k]) for k in want), (n, want, have)
    assert any(isinstance(data["segments"][0].get(k), list) for k in NUMBERS)  # keyframes, not constants


# ------------------------------------------------------------------ the real server


def cat_png(size: int = 200) -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).resize((size, size * 300 // 451)).save(buf, format="PNG")
    return buf.getvalue()


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(np.float32)


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = tmp_path_factory.mktemp("live-out")
    with LiveServer("--size", SIZE, "--cadence", "1", "--device", "cpu", "--out", out, cwd=out) as s:
        s.out = out
        yield s


def test_frames_change_with_the_zoom_and_the_objective(server):
    page = Page(server.ws_url)
    assert page.hello["size"] == [96, 96] and "zoom" in {c["key"] for c in page.hello["controls"]}
    first = page.frame_at_least(0)
    page.send({"type": "set", "key": "zoom", "value": 1.0})  # a still camera: the dream alone moves it

    def motion(after: int, count: int = 6) -> tuple[float, int]:
        """Mean change between consecutive frames from frame `after` on."""
        prev, diffs, n = None, [], after
        while len(diffs) < count:
            msg = page.frame_at_least(n)
            img = decode(page.jpeg)
            if prev is not None:
                diffs.append(np.abs(img - prev).mean())
            prev, n = img, msg["n"] + 1
        return float(np.median(diffs)), msg["n"]

    ack = page.next(lambda m: m["type"] == "set")
    still, n = motion(ack["frame"] + 2)
    page.send({"type": "set", "key": "zoom", "value": 30.0})
    ack = page.next(lambda m: m["type"] == "set")
    shown = page.frame_at_least(ack["frame"])
    assert shown["values"]["zoom"] == 30.0 and ack["frame"] <= shown["n"] <= ack["frame"] + 3
    flying, n = motion(shown["n"] + 1)
    assert flying > 2 * still, (still, flying)  # 30× a second: every frame moves on visibly

    page.send({"type": "objective", "text": "features.4"})
    ack = page.next(lambda m: m["type"] in ("objective", "error"))
    assert ack["type"] == "objective", ack
    assert page.frame_at_least(ack["frame"])["values"]["objective"] == "features.4"
    assert first["n"] < ack["frame"]
    page.close()


def test_bad_values_from_the_page_are_refused_and_the_dream_goes_on(server):
    page = Page(server.ws_url)
    n = page.frame_at_least(0)["n"]
    for msg, words in (('{"type": "set", "key": "zoom", "value": NaN}', "finite"),
                       ({"type": "set", "key": "zoom", "value": "fast"}, "must be a number"),
                       ({"type": "set", "key": "octaves", "value": 99}, "from 1 to 12"),
                       ({"type": "objective", "text": "guide:/etc/passwd@features.10"}, "only an uploaded image"),
                       ({"type": "objective", "text": "features.99"}, "features.99"),
                       ({"type": "preset", "name": "../../etc/passwd"}, "unknown preset"),
                       ("{not json", "not JSON"), ({"type": "explode"}, "unknown message type")):
        page.send(msg if isinstance(msg, str) else json.dumps(msg))
        err = page.next(lambda m: m["type"] == "error")
        assert words in err["message"] and "\n" not in err["message"], (msg, err)
    assert page.frame_at_least(n + 3)["values"]["objective"]  # still dreaming
    page.close()


def test_two_pages_and_a_reload_see_the_same_dream(server):
    a, b = Page(server.ws_url), Page(server.ws_url)
    na, nb = a.frame_at_least(0)["n"], b.frame_at_least(0)["n"]
    a.close()
    again = Page(server.ws_url)  # the reloaded page
    assert again.frame_at_least(max(na, nb) + 2)["n"] >= na
    assert b.frame_at_least(nb + 2)["n"] > nb
    b.close(), again.close()


def test_uploads_are_images_under_a_limit_named_by_the_server(server):
    status, body = http(server.url + "upload", b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    assert status == 400 and "not a readable image" in json.loads(body)["message"]
    host, port = server.url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port))) as raw:  # 30 MB announced: refused before it is sent
        raw.sendall(f"POST /upload HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {30 << 20}\r\n\r\n".encode())
        answer = b""
        while b"}" not in answer and (chunk := raw.recv(65536)):
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and "over 25 MB" in answer
    status, body = http(server.url + "upload?name=../../evil.png", cat_png())
    reply = json.loads(body)
    assert status == 200 and reply["name"] == "upload-1.png" and (server.out / "upload-1.png").is_file()
    assert not (server.out.parent / "evil.png").exists()
    page = Page(server.ws_url)
    page.send({"type": "objective", "text": "features.10 + 0.5*guide:upload-1.png@features.10"})
    assert page.next(lambda m: m["type"] in ("objective", "error"))["type"] == "objective"
    page.close()
    for name in ("../conftest.py", "%2e%2e%2fconftest.py", "upload-1.png/../x"):
        assert http(server.url + "files/" + name)[0] == 404
    status, png = http(server.url + "snapshot.png")
    assert status == 200 and Image.open(io.BytesIO(png)).size == (96, 96)


def test_osc_steers_the_dream_and_bad_messages_are_refused(server):
    from pythonosc.udp_client import SimpleUDPClient

    page = Page(server.ws_url)
    page.frame_at_least(0)
    osc = SimpleUDPClient("127.0.0.1", server.osc_port)
    osc.send_message("/zoomdream/zoom", "fast")
    assert "must be a number" in page.next(lambda m: m["type"] == "error")["message"]
    osc.send_message("/zoomdream/steps", float("nan"))
    assert "finite" in page.next(lambda m: m["type"] == "error")["message"]
    osc.send_message("/zoomdream/objective", "guide:/etc/passwd@features.10")
    assert "only an uploaded image" in page.next(lambda m: m["type"] == "error")["message"]
    osc.send_message("/nowhere", 1)
    assert "unknown address" in page.next(lambda m: m["type"] == "error")["message"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"/zoomdream/zoom\0,f\0\0\xff", ("127.0.0.1", server.osc_port))  # a truncated message
    sock.sendto(b"\x00" * 9000, ("127.0.0.1", server.osc_port))
    osc.send_message("/zoomdream/zoom", 2.5)
    assert page.next(lambda m: m["type"] == "frame" and m["values"]["zoom"] == 2.5, timeout=60)
    osc.send_message("/zoomdream/objective", "features.7")
    assert page.next(lambda m: m["type"] == "frame" and m["values"]["objective"] == "features.7", timeout=60)
    page.close()


def test_the_recording_becomes_a_preset_that_renders_the_same_journey(server, tmp_path):
    page = Page(server.ws_url)
    page.send({"type": "restart", "start": "preset"})  # a take of its own, from frame 0
    page.next(lambda m: m["type"] == "hello")
    seen: dict[int, dict] = {}
    plan = {3: ("zoom", 2.0), 8: ("rotate", 30.0), 12: ("step_size", 0.05), 16: (OBJECTIVE, "features.7"),
            22: ("zoom", 0.8)}
    n, started = 0, False
    while n < 30:
        msg = page.next(lambda m: m["type"] == "frame")
        started |= msg["n"] < 10
        if not started:
            continue  # a frame of the take before the restart
        n = msg["n"]
        seen[n] = msg["values"]
        for at, (key, value) in list(plan.items()):
            if n >= at:
                del plan[at]
                page.send({"type": OBJECTIVE, "text": value} if key == OBJECTIVE else
                          {"type": "set", "key": key, "value": value})
    page.send({"type": "save"})
    saved = page.next(lambda m: m["type"] == "saved")["file"]
    path = server.out / saved
    assert path.parent == server.out and path.suffix == ".toml"
    preset = load_preset(path)
    schedule = preset.schedule()
    assert preset.frames >= max(seen) + 1 and preset.fps == 24
    checked = 0
    for n, values in seen.items():
        spec = schedule.at(n)
        assert str(spec.objective) == values[OBJECTIVE], n
        have = resolved(spec)
        assert all(close(have[k], values[k]) for k in NUMBERS), (n, values, have)
        checked += 1
    assert checked >= 20 and len({v["zoom"] for v in seen.values()} | {2.0, 0.8}) == len({v["zoom"] for v in seen.values()}) >= 3

    # The same journey at another size, by the CLI ...
    r = run_cli("render", "--preset", path, "-o", tmp_path / "again.mp4", "--size", "64x64", "--frames", "12", "--quiet",
                cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again.mp4").stat().st_size > 1000
    # ... and from the page, in a child process, with its progress and a link to the video.
    page.send({"type": "render", "size": "64x64", "codec": "/etc/passwd"})
    refused = page.next(lambda m: m["type"] in ("render", "error"))
    assert refused["type"] == "error" and "codec" in refused["message"], refused
    page.send({"type": "render", "size": "64x64", "codec": "vp9"})
    started = page.next(lambda m: m["type"] in ("render", "error"))
    assert started.get("state") == "started", started
    done = page.next(lambda m: m["type"] == "render" and m["state"] in ("done", "failed"), timeout=600)
    assert done["state"] == "done" and done["file"].endswith(".webm"), done
    status, video = http(server.url + "files/" + done["file"])
    assert status == 200 and video[:4] == bytes.fromhex("1a45dfa3")  # Matroska/WebM
    page.close()


def test_ctrl_c_saves_an_unsaved_recording(tmp_path):
    with LiveServer("--size", "64x64", "--device", "cpu", "--out", tmp_path, "--no-osc", cwd=tmp_path) as s:
        page = Page(s.ws_url)
        page.frame_at_least(4)
        page.close()
        assert s.stop() == 0
    assert "saved the recording as" in "\n".join(s.lines)
    (saved,) = tmp_path.glob("live-*.toml")
    assert load_preset(saved).frames >= 5


def test_any_other_host_needs_the_token(tmp_path):
    with LiveServer("--host", "0.0.0.0", "--size", "64x64", "--device", "cpu", "--out", tmp_path, cwd=tmp_path) as s:
        assert "token=" in s.url
        base, _, query = s.url.partition("?")
        assert http(base)[0] == 403 and http(base + "snapshot.png")[0] == 403
        assert http(base + "upload", cat_png())[0] == 403
        assert http(base + "?token=wrong")[0] == 403
        from websockets.exceptions import InvalidStatus

        with pytest.raises(InvalidStatus, match="403"):
            Page(base.replace("http://", "ws://") + "ws")
        with pytest.raises(InvalidStatus, match="403"):
            Page(base.replace("http://", "ws://") + "ws?token=wrong")
        status, page = http(s.url)
        assert status == 200 and b"zoomdream live" in page
        assert Page(s.ws_url).frame_at_least(0)
        from pythonosc.udp_client import SimpleUDPClient

        watcher = Page(s.ws_url)
        SimpleUDPClient("127.0.0.1", s.osc_port).send_message("/zoomdream/zoom", 3.0)
        assert "without the token" in watcher.next(lambda m: m["type"] == "error")["message"]
        token = query.split("=", 1)[1]
        SimpleUDPClient("127.0.0.1", s.osc_port).send_message("/zoomdream/zoom", [token, 3.0])
        assert watcher.next(lambda m: m["type"] == "frame" and m["values"]["zoom"] == 3.0)


def test_loopback_refuses_other_hosts_and_sites(server):
    assert http(server.url, headers={"Host": "evil.example:80"})[0] == 403  # a name rebound to 127.0.0.1
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus, match="403"):
        Page(server.ws_url, origin="http://evil.example")


def test_bad_command_lines_for_live(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    for args, words in ((["--port", str(port)], f"port {port} on 127.0.0.1 is in use"),
                        (["--port", "70000"], "--port"), (["--size", "31x31"], "too small"),
                        (["--out", tmp_path / "file.txt"], "not a folder"), ([tmp_path / "missing.png"], "missing.png"),
                        (["--host", "no such host!"], "cannot read host"), (["--zoom", "2"], "No such option")):
        (tmp_path / "file.txt").write_text("x")
        r = run_main("live", *map(str, args))
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    busy.close()


# ------------------------------------------------------------------ a real browser


def chromium():
    """Debian's chromium and chromium-driver, headless, through selenium (`make browser`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "install Debian's chromium and chromium-driver: make browser"
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_the_page_in_a_real_browser(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium()
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 60)
        frame = browser.find_element(By.ID, "frame")
        first = wait.until(lambda b: frame.get_attribute("data-n"))
        src = frame.get_attribute("src")
        wait.until(lambda b: frame.get_attribute("data-n") != first and frame.get_attribute("src") != src)
        assert browser.execute_script("return document.getElementById('frame').naturalWidth") == 96
        slider = browser.find_element(By.ID, "slider-zoom")
        assert "Scale factor per second" in slider.get_attribute("title")
        slider.click()  # the middle of the log scale: 1 per second
        slider.send_keys(Keys.ARROW_RIGHT * 25)
        wanted = float(wait.until(lambda b: b.find_element(By.ID, "input-zoom").get_attribute("value")))
        wait.until(lambda b: abs(float(b.find_element(By.ID, "value-zoom").get_attribute("data-value")) - wanted)
                   < 1e-9)
        assert browser.find_element(By.ID, "rate").text.endswith("s/frame")
        box = browser.find_element(By.ID, "objective")
        box.clear()
        box.send_keys("guide:/etc/passwd@features.10", Keys.ENTER)
        wait.until(lambda b: "only an uploaded image" in b.find_element(By.ID, "objective-error").text)
    finally:
        browser.quit()
