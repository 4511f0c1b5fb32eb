// glassgrad playground page. It computes nothing itself: every number comes from the server
// (glassgrad), this file only draws it and sends the learner's clicks back.
import { drawCurve, drawHeat, drawPoints, lut, paintPicture } from "./draw.js";

const $ = (id) => document.getElementById(id);
const DATASETS = { classification: ["circles", "xor", "gaussians", "spirals", "moons", "xor-table"],
                   regression: ["plane", "sine"] };
const FEATURES = ["x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2"];
const FEATURE_LABELS = { x1: "x₁", x2: "x₂", x1sq: "x₁²", x2sq: "x₂²", x1x2: "x₁x₂",
                         sinx1: "sin x₁", sinx2: "sin x₂" };
const MAX_LAYERS = 6, MAX_UNITS = 8, SPACING = 56;

const pg = { ws: null, sid: null, cfg: {}, sizes: [], data: null, state: null, sel: null,
             walk: null, dirty: false, pending: null, clickAt: null, latency: [], frames: 0,
             drawn: 0 };
window.__pg = pg; // for the browser tests and benchmarks: read-only use

// ------------------------------------------------------------------ connection
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  pg.ws = new WebSocket(`${proto}://${location.host}/ws`);
  pg.ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  pg.ws.onclose = () => message("error", "The connection to the playground server closed " +
    "(the server stopped, or this tab sent something it could not read). Reload the page " +
    "to start a new session.");
}

function send(obj) {
  if (pg.ws && pg.ws.readyState === WebSocket.OPEN) pg.ws.send(JSON.stringify(obj));
}

function onMessage(m) {
  switch (m.type) {
    case "hello": return hello(m);
    case "config": return setConfig(m);
    case "data": pg.data = m; pg.dataCount = (pg.dataCount || 0) + 1; layoutNet();
      return redraw();
    case "state": return setState(m);
    case "inspect": return showInspect(m);
    case "trace": return startWalk(m);
    case "error":
      settled();
      message("error", m.message);
      markInvalid(m.fields || {});
      return fillControls();
    case "info": return message("info", m.message, "info");
    case "uploaded": return m.messages.forEach(onMessage);
    default: return undefined;
  }
}

function hello(m) {
  pg.sid = m.session;
  const speed = $("speed");
  speed.innerHTML = "";
  for (const v of m.speeds) speed.add(new Option(v === 0 ? "max" : `${v} steps/s`, v));
  speed.value = m.speed;
  const preset = $("preset");
  for (const [k, title] of Object.entries(m.presets)) preset.add(new Option(title, k));
  $("export-model").href = `/api/${pg.sid}/model.safetensors`;
  $("export-md").href = `/api/${pg.sid}/trace.md`;
  $("export-json").href = `/api/${pg.sid}/trace.json`;
  const params = new URLSearchParams(location.search);
  if ([...params.keys()].length) send({ type: "config", config: Object.fromEntries(params) });
}

function setConfig(m) {
  pg.cfg = m.config;
  settled();
  pg.sizes = m.sizes;
  markInvalid({});
  fillControls();
  history.replaceState(null, "", "?" + new URLSearchParams(pg.cfg).toString());
  closeInspector();
  closeWalk(false);
}

function setState(m) {
  const prevStep = pg.state ? pg.state.step : -1;
  pg.state = m;
  pg.frames += 1;
  if (m.stopped) message("stopped", m.stopped, "stopped");
  else clearMessages("stopped");
  redraw();
  // keep the open inspector on the current step (at most a few times a second while playing)
  if (pg.sel && m.step !== prevStep && !pg.pending) inspect(pg.sel);
}

// ------------------------------------------------------------------ controls
function fillControls() {
  for (const el of document.querySelectorAll("[data-field]")) {
    const v = pg.cfg[el.dataset.field];
    if (v !== undefined && document.activeElement !== el) el.value = v;
  }
  $("ratio-out").textContent = `${Math.round(pg.cfg.train_ratio * 100)}%`;
  $("noise-out").textContent = pg.cfg.noise;
  const ds = $("datasets");
  ds.innerHTML = "";
  for (const name of [...DATASETS.classification, ...DATASETS.regression]) {
    const b = document.createElement("button");
    b.textContent = name;
    b.dataset.data = name;
    b.className = name === pg.cfg.data ? "active" : "";
    b.onclick = () => change({ data: name });
    ds.append(b);
  }
  const layers = pg.sizes.length - 2;
  $("layer-count").textContent = `${layers} hidden layer${layers === 1 ? "" : "s"}`;
  $("add-layer").disabled = layers >= MAX_LAYERS;
  $("remove-layer").disabled = layers <= 0;
}

function change(fields) {
  pg.inFlight = (pg.inFlight || 0) + 1;
  send({ type: "config", config: fields });
}

function settled() {
  // the server answers each config message once (config or error), in order
  pg.inFlight = Math.max(0, (pg.inFlight || 0) - 1);
  if (pg.inFlight === 0) pg.layersAsked = null;
}

function hidden() {
  // a click before the previous one's answer builds on what was asked, not on the old set-up
  const layers = pg.layersAsked ?? pg.cfg.layers;
  return layers ? layers.split(",").filter((s) => s).map(Number) : [];
}

function setLayers(list) {
  pg.layersAsked = list.join(",");
  change({ layers: pg.layersAsked });
}

function bindControls() {
  for (const el of document.querySelectorAll("[data-field]")) {
    el.addEventListener("change", () => change({ [el.dataset.field]: el.value }));
  }
  $("play").onclick = () => send({ type: pg.state && pg.state.playing ? "pause" : "play" });
  $("step").onclick = () => send({ type: "step" });
  $("reset").onclick = () => send({ type: "reset" });
  $("regenerate").onclick = () => send({ type: "regenerate" });
  $("stepthrough").onclick = () => send({ type: "stepthrough", sample: sampleChoice() ?? 0 });
  $("speed").onchange = () => send({ type: "speed", value: Number($("speed").value) });
  $("preset").onchange = () => {
    if ($("preset").value) send({ type: "preset", name: $("preset").value });
    $("preset").value = "";
  };
  $("add-layer").onclick = () => setLayers([...hidden(), 2]);
  $("remove-layer").onclick = () => setLayers(hidden().slice(0, -1));
  $("csv").onchange = upload;
  $("show-test").onchange = redraw;
  $("discretize").onchange = redraw;
  $("walk-sample").onchange = () => send({ type: "stepthrough",
                                            sample: Number($("walk-sample").value) });
  $("inspector-close").onclick = closeInspector;
  $("sample").onchange = () => pg.sel && inspect(pg.sel);
  $("walk-next").onclick = () => walkTo(pg.walk.stage + 1);
  $("walk-prev").onclick = () => walkTo(pg.walk.stage - 1);
  $("walk-close").onclick = () => closeWalk(false);
  $("export-png").onclick = exportPng;
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, select, textarea")) return;
    if (e.key === " ") { e.preventDefault(); $("play").click(); }
  });
}

async function upload() {
  const file = $("csv").files[0];
  if (!file) return;
  try {
    const r = await fetch(`/api/${pg.sid}/csv?name=${encodeURIComponent(file.name)}`,
                          { method: "POST", body: file });
    onMessage(await r.json());
  } catch (e) {
    message("error", `Could not upload ${file.name}: ${e}`);
  }
  $("csv").value = "";
}

// ------------------------------------------------------------------ messages
function message(kind, text, key) {
  const box = $("messages");
  if (key) {
    const old = box.querySelector(`[data-key="${key}"]`);
    if (old) { old.querySelector("span").textContent = text; return; }
  }
  const div = document.createElement("div");
  div.className = `msg ${kind}`;
  if (key) div.dataset.key = key;
  const span = document.createElement("span");
  span.textContent = text;
  const x = document.createElement("button");
  x.textContent = "×";
  x.title = "dismiss";
  x.onclick = () => div.remove();
  div.append(span, x);
  box.prepend(div);
  while (box.children.length > 4) box.lastChild.remove();
}

function clearMessages(key) {
  for (const el of $("messages").querySelectorAll(`[data-key="${key}"]`)) el.remove();
}

function markInvalid(fields) {
  for (const el of document.querySelectorAll("[data-field]")) {
    el.classList.toggle("invalid", el.dataset.field in fields);
  }
}

// ------------------------------------------------------------------ the network
function columns() {
  const net = $("net");
  const w = net.clientWidth || 500, h = net.clientHeight || 460;
  const n = pg.sizes.length;
  const most = Math.max(...pg.sizes);
  const gap = Math.min(SPACING, (h - 70) / Math.max(most - 1, 1)); // room for the +/− row
  return pg.sizes.map((size, c) => ({
    x: 40 + (c * (w - 80)) / Math.max(n - 1, 1),
    ys: Array.from({ length: size }, (_, i) => h / 2 + 18 + (i - (size - 1) / 2) * gap),
  }));
}

function layoutNet() {
  const net = $("net");
  for (const el of net.querySelectorAll(".unit, .layer-ctl")) el.remove();
  if (!pg.sizes.length) return;
  const cols = columns();
  cols.forEach((col, c) => {
    col.ys.forEach((y, i) => {
      const u = document.createElement("div");
      u.className = "unit";
      u.dataset.layer = c;
      u.dataset.unit = i;
      u.style.left = `${col.x}px`;
      u.style.top = `${y}px`;
      const cv = document.createElement("canvas");
      cv.width = cv.height = pg.data ? pg.data.grid : 50;
      const val = document.createElement("span");
      val.className = "val";
      u.append(cv, val);
      if (c === 0) {
        u.title = pg.data ? FEATURE_LABELS[pg.data.features[i].name] : "";
      } else {
        u.title = `click: z, a and δ of this unit`;
        u.onclick = () => select({ what: "unit", layer: c, unit: i });
      }
      net.append(u);
    });
    if (c > 0 && c < cols.length - 1) net.append(layerControl(c, col));
  });
  buildEdges();
  drawEdges();
}

// One more or one fewer unit in hidden layer k, of the layers as they are when clicked: the
// controls are drawn with the network (layoutNet, on each data message), so a click just
// after a config answer can land on controls drawn for the layers before it.
function resize(k, by) {
  const units = hidden();
  if (k >= units.length) return;  // (a control of a layer just removed)
  units[k] = Math.min(MAX_UNITS, Math.max(1, units[k] + by));
  setLayers(units);
}

function layerControl(c, col) {
  const ctl = document.createElement("div");
  ctl.className = "layer-ctl";
  ctl.style.left = `${col.x}px`;
  ctl.style.top = "0px";
  const units = hidden();
  const plus = document.createElement("button");
  plus.textContent = "+";
  plus.title = "add a unit";
  plus.disabled = units[c - 1] >= MAX_UNITS;
  plus.onclick = () => resize(c - 1, 1);
  const minus = document.createElement("button");
  minus.textContent = "−";
  minus.title = "remove a unit";
  minus.disabled = units[c - 1] <= 1;
  minus.onclick = () => resize(c - 1, -1);
  const label = document.createElement("span");
  label.textContent = `${units[c - 1]}`;
  ctl.append(minus, label, plus);
  return ctl;
}

const SVG = "http://www.w3.org/2000/svg";

// The edges are made once per network shape (layoutNet) and only restyled per frame, so a
// click that lands while training redraws still hits the same element.
function buildEdges() {
  const svg = $("edges");
  svg.innerHTML = "";
  const cols = columns();
  svg.dataset.shape = pg.sizes.join(",");
  for (let k = 0; k + 1 < cols.length; k++) {
    const a = cols[k], b = cols[k + 1];
    b.ys.forEach((y1, j) => a.ys.forEach((y0, i) => {
      const x0 = a.x + 24, x1 = b.x - 24;
      const d = `M${x0},${y0} C${(x0 + x1) / 2},${y0} ${(x0 + x1) / 2},${y1} ${x1},${y1}`;
      const p = document.createElementNS(SVG, "path");
      p.setAttribute("d", d);
      p.classList.add("edge");
      const hit = document.createElementNS(SVG, "path");
      hit.setAttribute("d", d);
      hit.classList.add("hit");
      Object.assign(hit.dataset, { layer: k + 1, from: i, to: j });
      hit.append(document.createElementNS(SVG, "title"));
      hit.onclick = () => select({ what: "edge", layer: k + 1, from: i, to: j });
      const t = document.createElementNS(SVG, "text");
      const f = 0.3 + (0.4 * ((i + j) % 3)) / 2; // spread the labels along the edges
      t.setAttribute("x", x0 + (x1 - x0) * f);
      t.setAttribute("y", y0 + (y1 - y0) * f);
      t.classList.add("edge-label");
      svg.append(p, hit, t);
    }));
  }
}

function drawEdges() {
  const svg = $("edges");
  // A new shape's config and first state can arrive before its data message rebuilds the
  // edges: restyle only edges that were built for the shape of these weights.
  const ws = pg.state ? pg.state.weights : [];
  if (!ws.length || svg.dataset.shape !== [ws[0].W[0].length, ...ws.map((l) => l.W.length)].join(",")) {
    return;
  }
  let max = 1e-9;
  for (const l of pg.state.weights) for (const row of l.W) for (const w of row) {
    max = Math.max(max, Math.abs(w));
  }
  const walk = pg.walk && walkEdges();
  const paths = svg.querySelectorAll("path.edge"), hits = svg.querySelectorAll("path.hit");
  const labels = svg.querySelectorAll("text.edge-label");
  hits.forEach((hit, n) => {
    const l = Number(hit.dataset.layer), i = Number(hit.dataset.from), j = Number(hit.dataset.to);
    const w = (pg.state.weights[l - 1].W[j] || [])[i];
    if (w === undefined) return;
    const p = paths[n];
    p.setAttribute("stroke", w >= 0 ? "var(--pos)" : "var(--neg)");
    p.setAttribute("stroke-width", (0.5 + 5 * Math.min(Math.abs(w) / max, 1)).toFixed(2));
    const flow = !!walk && walk.layer === l;
    p.classList.toggle("flow", flow);
    hit.firstChild.textContent = `w = ${fmt(w)}: click for ∂L/∂w and the update`;
    labels[n].textContent = flow && walk.values ? fmt(walk.values[j][i]) : "";
  });
}

// ------------------------------------------------------------------ drawing
function redraw() {
  if (pg.dirty) return;
  pg.dirty = true;
  requestAnimationFrame(() => { pg.dirty = false; render(); });
}

function render() {
  const s = pg.state, d = pg.data;
  if (!s || !d) return;
  pg.drawn += 1;
  $("epoch").textContent = s.epoch;
  $("stepcount").textContent = s.step;
  $("play").textContent = s.playing ? "⏸ pause" : "▶ play";
  $("test-loss").textContent = fmt(s.test_loss);
  $("train-loss").textContent = fmt(s.train_loss);
  const acc = (v) => (v === undefined ? "" : `(accuracy ${(100 * v).toFixed(1)}%)`);
  $("test-acc").textContent = acc(s.test_acc);
  $("train-acc").textContent = acc(s.train_acc);
  drawCurve($("curve"), s.history);
  const out = s.units[s.units.length - 1][0];
  drawHeat($("boundary"), out, d.grid, $("discretize").checked);
  drawPoints($("boundary"), d, $("show-test").checked, pg.cfg.problem);
  drawAxes(d, out);
  const units = document.querySelectorAll("#net .unit");
  for (const u of units) {
    const c = Number(u.dataset.layer), i = Number(u.dataset.unit);
    const pic = c === 0 ? d.features[i] : (s.units[c - 1] || [])[i];
    if (pic) paintPicture(u.querySelector("canvas"), pic, d.grid);
    u.classList.toggle("selected", !!pg.sel && pg.sel.what === "unit" &&
                       pg.sel.layer === c && pg.sel.unit === i);
  }
  drawFeatures();
  drawEdges();
  drawDiagnosis(s.diagnosis);
  if (pg.walk) annotateWalk();
}

function drawAxes(d, out) {
  const [x0, x1, y0, y1] = d.domain;
  $("x-range").textContent = `${fmt(x0)} … ${fmt(x1)}`;
  $("y-range").textContent = `${fmt(y0)} … ${fmt(y1)}`;
  const key = pg.cfg.problem === "classification"
    ? [[0, "class 0 (ŷ < 0.5)"], [255, "class 1 (ŷ ≥ 0.5)"]]
    : [[0, `ŷ = ${fmt(out.centre - out.half)}`], [128, `${fmt(out.centre)}`],
       [255, `${fmt(out.centre + out.half)}`]];
  const box = $("legend");
  box.innerHTML = "";
  const table = lut();
  for (const [q, text] of key) {
    const item = document.createElement("span");
    const dot = document.createElement("i");
    dot.style.background = `rgb(${table[q * 3]},${table[q * 3 + 1]},${table[q * 3 + 2]})`;
    item.append(dot, text);
    box.append(item);
  }
}

function drawFeatures() {
  const box = $("features");
  const on = new Set((pg.cfg.features || "").split(","));
  if (box.children.length !== FEATURES.length) {
    box.innerHTML = "";
    for (const f of FEATURES) {
      const row = document.createElement("div");
      row.className = "feature";
      row.dataset.feature = f;
      row.title = "click to use this input or not";
      const label = document.createElement("span");
      label.textContent = FEATURE_LABELS[f];
      row.append(document.createElement("canvas"), label);
      row.onclick = () => {
        const now = new Set((pg.cfg.features || "").split(",").filter((x) => x));
        if (now.has(f)) now.delete(f); else now.add(f);
        change({ features: FEATURES.filter((x) => now.has(x)).join(",") });
      };
      box.append(row);
    }
  }
  for (const row of box.children) row.classList.toggle("on", on.has(row.dataset.feature));
  const pics = pg.data && pg.data.feature_pictures;
  if (pics && box.dataset.painted !== String(pg.dataCount)) { // once per data message
    for (const row of box.children) {
      paintPicture(row.querySelector("canvas"), pics[row.dataset.feature], pg.data.grid);
    }
    box.dataset.painted = String(pg.dataCount);
  }
}

function drawDiagnosis(diag) {
  const bars = $("bars");
  bars.innerHTML = "";
  const max = Math.max(1e-12, ...diag.layers.map((l) => l.grad_norm || 0));
  for (const l of diag.layers) {
    const name = l.layer === diag.layers.length ? "output" : `layer ${l.layer}`;
    addBar(bars, `${name} ‖∂L/∂W‖ ${fmt(l.grad_norm)}`, (l.grad_norm || 0) / max, "");
    if (l.op === "relu") addBar(bars, `dead ${pct(l.dead)}`, l.dead || 0, "sat");
    else if (l.op) addBar(bars, `saturated ${pct(l.saturated)}`, l.saturated || 0, "sat");
  }
  const list = $("findings");
  list.innerHTML = "";
  for (const f of diag.findings) {
    const li = document.createElement("li");
    li.dataset.rule = f.rule;
    li.innerHTML = "<b></b><div class=evidence></div><div class=fix></div>";
    li.querySelector("b").textContent = f.title;
    li.querySelector(".evidence").textContent = f.evidence.join("; ");
    li.querySelector(".fix").textContent = `Fix: ${f.fix}`;
    list.append(li);
  }
}

function addBar(box, label, frac, cls) {
  const l = document.createElement("span");
  l.textContent = label;
  const b = document.createElement("div");
  b.className = `bar ${cls}`;
  b.style.width = `${Math.max(0, Math.min(1, frac)) * 100}%`;
  box.append(l, b);
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  return Number(v).toPrecision(4).replace(/\.?0+(e|$)/, "$1");
}

function pct(v) {
  return v === null || v === undefined ? "–" : `${(100 * v).toFixed(0)}%`;
}

// ------------------------------------------------------------------ the inspector
function sampleChoice() {
  const v = $("sample").value;
  return v === "batch" || v === "" ? null : Number(v);
}

function select(sel) {
  pg.clickAt = performance.now();
  pg.sel = sel;
  fillSamples();
  inspect(sel);
}

function fillSamples() {
  const box = $("sample");
  const batch = pg.state ? pg.state.batch : [];
  const keep = box.value || "0";
  box.innerHTML = "";
  box.add(new Option("the whole batch", "batch"));
  batch.slice(0, 32).forEach((_, i) => box.add(new Option(`sample ${i + 1} of the batch`, i)));
  box.value = [...box.options].some((o) => o.value === keep) ? keep : "0";
}

function inspect(sel) {
  pg.pending = performance.now();
  send({ type: "inspect", ...sel, sample: sampleChoice() });
}

function showInspect(m) {
  const clicked = pg.clickAt;
  pg.clickAt = null;
  $("inspector").hidden = false;
  $("inspector-title").textContent = m.title;
  $("inspector-step").textContent = `Step ${m.step} (the next update), ` +
    (m.sample === null ? "the whole batch" : `sample ${m.sample + 1} of the batch`) +
    ": the numbers come from gg.explain.trace_net on the current weights.";
  const lines = $("lines");
  lines.innerHTML = "";
  for (const line of m.lines) {
    const tr = lines.insertRow();
    tr.className = "line";
    tr.dataset.label = line.label;
    for (const [cls, text] of [["label", line.label], ["formula", line.formula],
                               ["numbers", line.numbers], ["value", `= ${line.value}`]]) {
      const td = tr.insertCell();
      td.className = cls;
      td.textContent = cls === "value" ? line.value : text;
      if (cls === "value") td.title = line.raw;
    }
  }
  const rows = $("rows");
  rows.innerHTML = "";
  if (m.rows && m.sample === null) {
    rows.insertRow().innerHTML = "<th>sample</th><th>z</th><th>a</th><th>δ</th>";
    for (const r of m.rows) {
      const tr = rows.insertRow();
      for (const v of [r.sample + 1, r.z, r.a, r.delta]) tr.insertCell().textContent = v;
    }
  }
  render();
  if (clicked !== null) pg.latency.push(performance.now() - clicked); // click to numbers shown
  pg.pending = null;
}

function closeInspector() {
  pg.sel = null;
  $("inspector").hidden = true;
  redraw();
}

// ------------------------------------------------------------------ step-through
function stages(L) {
  const list = [];
  for (let l = 1; l <= L; l++) list.push({ kind: "forward", layer: l });
  list.push({ kind: "loss", layer: L });
  for (let l = L; l >= 1; l--) list.push({ kind: "backward", layer: l });
  list.push({ kind: "update", layer: 0 });
  return list;
}

function startWalk(m) {
  // another sample of the same step keeps the stage the learner is looking at
  const keep = pg.walk && pg.walk.trace.step === m.step ? pg.walk.stage : 0;
  pg.walk = { trace: m, stage: 0, stages: stages(m.layers.length) };
  $("walk").hidden = false;
  $("walk-step").textContent = m.step;
  const pick = $("walk-sample");
  pick.innerHTML = "";
  for (let i = 0; i < m.batch_size; i++) pick.add(new Option(`sample ${i + 1} of the batch`, i));
  pick.value = String(m.sample);
  const checks = $("walk-checks");
  checks.innerHTML = "";
  for (const c of m.checks) {
    const li = document.createElement("li");
    li.dataset.check = c.name;
    li.textContent = `${c.ok === false ? "✗" : c.ok ? "✓" : "•"} ${c.title}: ${c.detail.join(" ")}`;
    checks.append(li);
  }
  walkTo(keep);
}

function walkTo(k) {
  const w = pg.walk;
  if (!w) return;
  if (k >= w.stages.length) { closeWalk(true); return; }
  w.stage = Math.max(0, k);
  const st = w.stages[w.stage];
  $("walk-prev").disabled = w.stage === 0;
  $("walk-next").textContent = w.stage === w.stages.length - 1 ? "apply the step ▶" : "next ▶";
  const t = w.trace, L = t.layers.length;
  const ly = t.layers[st.layer - 1];
  const v = (xs) => `[${xs.map(fmt).join(", ")}]`;
  let title = "", detail = "";
  const who = `sample ${t.sample + 1} of ${t.batch_size}`;
  if (st.kind === "forward") {
    title = `Forward, layer ${st.layer}${st.layer === L ? " (output)" : ""}: ` +
            `z = W a + b, a = ${ly.activation}(z)   (${who})`;
    detail = `a (in) = ${v(ly.a_in)}\nz = ${v(ly.z)}\na = ${v(ly.a)}`;
  } else if (st.kind === "loss") {
    title = `Loss (${t.loss_name}): ${t.loss_formula}`;
    detail = `ŷ = ${fmt(t.yhat)}, y = ${fmt(t.y)}\nL (batch) = ${fmt(t.loss)}`;
  } else if (st.kind === "backward") {
    title = st.layer === L ? `Backward, output layer: δ = ∂ℓ/∂a ⊙ f′(z)` :
            `Backward, layer ${st.layer}: δ = (Wᵀδ) ⊙ f′(z), the gradient flows along the ` +
            `highlighted edges`;
    detail = `δ = ${v(ly.delta)}   (${who})\n∂L/∂W (on the edges) = c Σ δ aᵀ over the batch` +
             `\n∂L/∂b = ${v(ly.db)}`;
  } else {
    title = `Update: W ← W − η ∂L/∂W with η = ${fmt(t.lr)}`;
    detail = `the loss on this batch goes from ${fmt(t.loss)} to ${fmt(t.loss_after)}` +
             `\nPress "apply the step" to train with exactly these numbers.`;
  }
  $("walk-stage").textContent = title;
  $("walk-detail").textContent = detail;
  render();
}

function walkEdges() {
  const w = pg.walk, st = w.stages[w.stage], t = w.trace;
  if (st.kind === "forward") return { layer: st.layer, values: t.layers[st.layer - 1].W };
  if (st.kind === "backward") return { layer: st.layer, values: t.layers[st.layer - 1].dW };
  if (st.kind === "update") return { layer: t.layers.length, values: t.layers.at(-1).W_after };
  return { layer: -1 };
}

function annotateWalk() {
  const w = pg.walk, st = w.stages[w.stage], t = w.trace, L = t.layers.length;
  for (const u of document.querySelectorAll("#net .unit")) {
    const c = Number(u.dataset.layer), i = Number(u.dataset.unit);
    let text = "";
    if (c === 0) text = fmt(t.layers[0].a_in[i]);
    else if (st.kind === "backward" && c >= st.layer) text = `δ ${fmt(t.layers[c - 1].delta[i])}`;
    else if (st.kind === "update" && c >= 1) text = `δ ${fmt(t.layers[c - 1].delta[i])}`;
    else if (st.kind === "loss" || (st.kind === "backward" && c < st.layer) ||
             (st.kind === "forward" && c <= st.layer)) text = fmt(t.layers[c - 1].a[i]);
    u.querySelector(".val").textContent = text;
    const flow = (st.kind === "forward" && c === st.layer) ||
                 (st.kind === "backward" && c === st.layer) || (st.kind === "loss" && c === L);
    u.classList.toggle("flow", flow);
  }
}

function closeWalk(apply) {
  if (!pg.walk) return;
  if (apply) send({ type: "step" });
  pg.walk = null;
  $("walk").hidden = true;
  for (const u of document.querySelectorAll("#net .unit")) {
    u.querySelector(".val").textContent = "";
    u.classList.remove("flow");
  }
  redraw();
}

// ------------------------------------------------------------------ export
function exportPng() {
  const b = $("boundary"), c = $("curve");
  const out = document.createElement("canvas");
  out.width = b.width + c.width + 30;
  out.height = Math.max(b.height, c.height) + 20;
  const g = out.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, out.width, out.height);
  g.drawImage(b, 10, 10);
  g.drawImage(c, b.width + 20, 10);
  out.toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `playground-step-${pg.state ? pg.state.step : 0}.png`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
}

lut(); // build the colour table once
bindControls();
window.addEventListener("resize", () => { layoutNet(); redraw(); });
connect();
