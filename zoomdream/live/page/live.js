// zoomdream live: the page. It draws its controls from the server's declarations (the "hello"
// message), shows each frame as it arrives, and sends changes as small JSON messages; the server
// checks every one and answers a bad one with the line shown beside its control.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path, extra = "") => {
  const q = [token ? `token=${encodeURIComponent(token)}` : "", extra].filter(Boolean).join("&");
  return q ? `${path}?${q}` : path;
};
const $ = (id) => document.getElementById(id);
const STEPS = 1000; // slider positions

let ws = null;
let controls = {};      // key -> {spec, slider, box, now, error, pending}
let lastUrl = null;
let paused = false;
let fps = 24;

// ------------------------------------------------------------------ slider scales

// A range that also takes 0 ("automatic", the tile) keeps the slider's first position for it.
function toValue(spec, pos) {
  if (spec.zero && pos === 0) return 0;
  const p = pos / STEPS;
  let v;
  if (spec.scale === "log") v = Math.exp(Math.log(spec.lo) + (Math.log(spec.hi) - Math.log(spec.lo)) * p);
  else if (spec.scale === "cubic") {
    const x = 2 * p - 1, m = Math.max(-spec.lo, spec.hi);
    v = Math.min(spec.hi, Math.max(spec.lo, Math.sign(x) * Math.abs(x) ** 3 * m));
  } else v = spec.lo + (spec.hi - spec.lo) * p;
  if (spec.open_lo && v <= spec.lo) v = spec.lo + (spec.hi - spec.lo) / STEPS;
  return spec.int ? Math.round(v) : Number(v.toPrecision(4));
}

function toPos(spec, v) {
  if (spec.zero && v === 0) return 0;
  let p;
  if (spec.scale === "log") p = (Math.log(v) - Math.log(spec.lo)) / (Math.log(spec.hi) - Math.log(spec.lo));
  else if (spec.scale === "cubic") {
    const m = Math.max(-spec.lo, spec.hi), x = v / m;
    p = (Math.sign(x) * Math.abs(x) ** (1 / 3) + 1) / 2;
  } else p = (v - spec.lo) / (spec.hi - spec.lo);
  return Math.max(spec.zero ? 1 : 0, Math.round(Math.min(1, Math.max(0, p)) * STEPS));
}

const show = (v) => (v === null || v === undefined ? "auto" : typeof v === "string" || Number.isInteger(v) ? String(v)
  : String(Number(v.toPrecision(4))));

// ------------------------------------------------------------------ building the page

function build(hello) {
  fps = hello.fps;
  const box = $("controls");
  box.textContent = "";
  controls = {};
  let group = null;
  for (const spec of hello.controls) {
    if (spec.group !== group) {
      group = spec.group;
      const h = document.createElement("h2");
      h.textContent = group;
      box.append(h);
    }
    const row = document.createElement("div");
    row.className = "control";
    row.id = `control-${spec.key}`;
    const label = document.createElement("label");
    label.textContent = spec.label;
    label.title = spec.help;
    label.htmlFor = `slider-${spec.key}`;
    // A number is a slider and a box; a choice (precondition) is a menu in the slider's place.
    const slider = document.createElement(spec.choices ? "select" : "input");
    if (spec.choices) {
      for (const choice of spec.choices) slider.append(new Option(choice, choice));
    } else {
      slider.type = "range"; slider.min = 0; slider.max = STEPS;
    }
    slider.id = `slider-${spec.key}`;
    slider.title = spec.help;
    const input = document.createElement("input");
    input.type = "text"; input.id = `input-${spec.key}`; input.title = spec.help;
    if (spec.choices) input.hidden = true;
    const now = document.createElement("div");
    now.className = "effective"; now.id = `value-${spec.key}`;
    const error = document.createElement("div");
    error.className = "error"; error.id = `error-${spec.key}`;
    row.append(label, slider, input, now, error);
    box.append(row);
    // pending: the frame from which the change sent takes effect (Infinity until the server
    // says); until a frame that late arrives, frames do not move the slider back.
    const c = { spec, slider, input, now, error, pending: null };
    controls[spec.key] = c;
    setShown(c, hello.values[spec.key]);
    let timer = null;
    slider.addEventListener("input", () => {
      c.pending = Infinity;
      if (spec.choices) { send({ type: "set", key: spec.key, value: slider.value }); return; }
      const v = toValue(spec, Number(slider.value));
      input.value = show(v);
      clearTimeout(timer);
      timer = setTimeout(() => send({ type: "set", key: spec.key, value: v }), 40);
    });
    input.addEventListener("change", () => {
      const text = input.value.trim();
      const v = Number(text);
      c.pending = Infinity;
      send({ type: "set", key: spec.key, value: text === "" || Number.isNaN(v) ? text : v });
    });
  }
  const select = $("preset");
  select.textContent = "";
  for (const [name, description] of Object.entries(hello.presets)) {
    const o = document.createElement("option");
    o.value = name; o.textContent = name; o.title = description;
    select.append(o);
  }
  select.value = hello.preset;
  const layers = $("layers");
  layers.textContent = "";
  for (const name of hello.layers) {
    const b = document.createElement("button");
    b.className = "chip"; b.textContent = name; b.type = "button";
    b.title = `Dream ${name}`;
    b.addEventListener("click", () => { $("objective").value = name; submitObjective(); });
    layers.append(b);
  }
  $("objective").value = hello.values.objective;
  $("objective").title = "Terms: " + hello.kinds.join(", ") + "; weighted sums like 0.6*features.10 + 0.4*features.14:5";
  $("render-size").value = hello.render_size;
  const codecs = $("render-codec");
  codecs.replaceChildren(...hello.codecs.map((c) => {
    const o = document.createElement("option");
    o.value = c.name; o.textContent = c.name; o.title = c.help;
    return o;
  }));
  codecs.value = hello.codec;
  showUploads(hello.uploads);
  showFiles(hello.files);
  setPaused(hello.paused);
}

function setShown(c, v) {
  if (v === null || v === undefined) return;
  c.slider.value = c.spec.choices ? v : toPos(c.spec, v);
  if (document.activeElement !== c.input) c.input.value = show(v);
}

function showUploads(names) {
  const box = $("uploads");
  box.textContent = "";
  for (const name of names) {
    const b = document.createElement("button");
    b.className = "chip"; b.type = "button"; b.textContent = name;
    b.title = "Use it as a guide image in the objective";
    b.addEventListener("click", () => {
      const obj = $("objective");
      obj.value = `${obj.value.trim() || "features.10"} + 0.5*guide:${name}@features.10`;
      obj.focus();
    });
    box.append(b);
  }
}

function showFiles(names) {
  for (const name of names) addFile(name);
}

function addFile(name) {
  const box = $("files");
  if ([...box.children].some((a) => a.dataset.name === name)) return;
  const a = document.createElement("a");
  a.className = "button"; a.href = withToken(`/files/${encodeURIComponent(name)}`); a.textContent = name;
  a.dataset.name = name; a.download = name;
  box.append(a);
}

function log(text, bad = false) {
  const line = document.createElement("div");
  line.textContent = text;
  if (bad) line.className = "bad";
  $("log").prepend(line);
  while ($("log").children.length > 30) $("log").lastChild.remove();
}

function setPaused(p) {
  paused = p;
  $("pause").textContent = p ? "Resume" : "Pause";
}

// ------------------------------------------------------------------ messages from the server

function onMessage(m) {
  switch (m.type) {
    case "hello": build(m); break;
    case "frame": onFrameInfo(m); break;
    case "set": {
      const c = controls[m.key];
      if (c) { c.pending = m.frame; c.error.textContent = ""; }
      break;
    }
    case "objective":
      $("objective-error").textContent = "";
      $("objective-now").textContent = `from frame ${m.frame}: ${m.text}`;
      break;
    case "error": {
      const c = controls[m.field];
      if (c) { c.error.textContent = m.message; c.pending = null; }
      else if (m.field === "objective") $("objective-error").textContent = m.message;
      else if (m.field === "upload") $("upload-error").textContent = m.message;
      log(m.message, true);
      break;
    }
    case "paused": setPaused(m.paused); break;
    case "uploads": showUploads(m.uploads); break;
    case "uploaded": break;
    case "saved": addFile(m.file); log(`saved ${m.file}`); break;
    case "render": onRender(m); break;
  }
}

function onFrameInfo(m) {
  $("rate").textContent = `${m.fps.toFixed(1)} frames/s · ${m.spf.toFixed(3)} s/frame`;
  $("clock").textContent = `frame ${m.n} · ${m.t.toFixed(2)} s of video`;
  $("frame").dataset.n = m.n;
  for (const [key, c] of Object.entries(controls)) {
    const v = m.values[key];
    c.now.textContent = `in effect: ${show(v)}`;
    c.now.dataset.value = v;
    if (c.pending !== null && m.n >= c.pending) c.pending = null;
    if (c.pending === null) setShown(c, v);
  }
  $("objective-now").textContent = `in effect: ${m.values.objective}`;
  $("objective-now").dataset.value = m.values.objective;
}

function onFrame(blob) {
  const url = URL.createObjectURL(blob);
  $("frame").src = url;
  if (lastUrl) URL.revokeObjectURL(lastUrl);
  lastUrl = url;
}

function onRender(m) {
  const bar = $("render-progress");
  if (m.state === "started") { bar.hidden = false; bar.value = 0; $("render-line").textContent = `rendering ${m.file}…`; addFile(m.preset); }
  if (m.state === "running") { bar.hidden = false; bar.value = m.done / m.total; $("render-line").textContent = m.line; }
  if (m.state === "done") { bar.value = 1; $("render-line").textContent = `wrote ${m.file}`; addFile(m.file); }
  if (m.state === "failed") { bar.hidden = true; $("render-line").textContent = `render failed: ${m.line}`; log(m.line, true); }
}

// ------------------------------------------------------------------ to the server

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function submitObjective() {
  send({ type: "objective", text: $("objective").value });
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${scheme}://${location.host}${withToken("/ws")}`);
  ws.binaryType = "blob";
  ws.onopen = () => { $("connection").textContent = ""; };
  ws.onmessage = (ev) => (typeof ev.data === "string" ? onMessage(JSON.parse(ev.data)) : onFrame(ev.data));
  ws.onclose = () => { $("connection").textContent = "reconnecting…"; setTimeout(connect, 1000); };
}

$("objective-form").addEventListener("submit", (ev) => { ev.preventDefault(); submitObjective(); });
$("pause").addEventListener("click", () => send({ type: paused ? "resume" : "pause" }));
$("restart").addEventListener("click", () => send({ type: "restart" }));
$("save").addEventListener("click", () => send({ type: "save" }));
$("render").addEventListener("click", () => send({ type: "render", size: $("render-size").value, codec: $("render-codec").value }));
$("preset").addEventListener("change", () => send({ type: "preset", name: $("preset").value }));
$("snapshot").href = withToken("/snapshot.png");
$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  $("upload-error").textContent = "";
  const res = await fetch(withToken("/upload", $("as-start").checked ? "start=1" : ""), { method: "POST", body: file });
  const answer = await res.json().catch(() => ({ type: "error", message: `upload refused (${res.status})` }));
  if (answer.type === "error") $("upload-error").textContent = answer.message;
  else log(`uploaded ${answer.name} (${answer.width}×${answer.height})`);
  $("upload").value = "";
});
connect();
