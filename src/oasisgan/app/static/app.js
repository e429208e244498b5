// OASIS painter: paint a label map, get an image. Plain JS, no build step, nothing from the internet.
//
// State held by the page (the server keeps none):
//   label    H*W class ids
//   seeds    list of seeds; seedIdx H*W indices into it (the noise of each pixel)
//   photo    in photo mode, the id of an inverted photo (the server keeps its noise); seed index 0
//            then means "the photo's noise", and transfers give classes another photo's look
// "New image" sets one seed everywhere; "resample class/region" gives the pixels of a class or a
// rectangle a new seed. The server rebuilds the spatial noise from (seeds, seedIdx) each time.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_UNDO = 40;

  const S = {
    info: null, W: 0, H: 0, scale: 1,
    label: null, seeds: [0], seedIdx: null,
    current: 1, tool: "brush", size: 6,
    undo: [], redo: [],
    selection: null,         // {x0, y0, x1, y1} in model pixels, inclusive-exclusive
    pointer: null,           // last pointer position in model pixels (for the cursor)
    stroke: null,            // {x, y} during a stroke
    exampleVariant: 0,
    photo: null,             // photo mode: the inverted photo {id, psnr, ...} whose label map is edited
    source: null,            // an inverted photo whose classes' look "Transfer" copies
    transfers: [],           // [{photo, class}]: classes that take the source's look
    pasteBack: false,
  };
  const P = { file: null, labelFile: null, inverting: false };
  const net = { inflight: false, pending: false, dirty: false, seq: 0, shown: 0, timer: 0, started: 0, tick: 0 };

  // ---------------------------------------------------------------------------------------------
  // messages
  let msgTimer = 0;
  function showMessage(text, kind = "error", ms = 0) {
    $("message-text").textContent = text;
    $("message").classList.toggle("info", kind !== "error");
    $("message").classList.remove("hidden");
    $("message").dataset.kind = kind;
    clearTimeout(msgTimer);
    if (ms) msgTimer = setTimeout(hideMessage, ms);
  }
  function hideMessage() { $("message").classList.add("hidden"); }
  $("message-close").addEventListener("click", hideMessage);

  // ---------------------------------------------------------------------------------------------
  // API
  async function api(path, body, asBlob = false) {
    const opts = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new Error("cannot reach the painter server (is `oasis app` still running?)");
    }
    if (!res.ok) {
      let msg = `${res.status} ${res.statusText}`;
      try { const j = await res.json(); if (j && j.error) msg = j.error; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return asBlob ? res.blob() : res.json();
  }

  function bytesToBase64(bytes) {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }
  function base64ToBytes(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function encodeMap(arr, wide) {
    const typed = wide ? Uint16Array.from(arr) : Uint8Array.from(arr);
    return { encoding: wide ? "u16" : "u8", data: bytesToBase64(new Uint8Array(typed.buffer)) };
  }
  function decodeMap(obj) {
    const bytes = base64ToBytes(obj.data);
    const arr = obj.encoding === "u16" ? new Uint16Array(bytes.buffer) : bytes;
    if (arr.length !== S.W * S.H) throw new Error("the server sent a map of the wrong size");
    return Uint16Array.from(arr);
  }
  const wideLabels = () => S.info.encoding === "u16";
  function noisePayload() {
    if (S.seeds.length === 1) return { seeds: S.seeds.slice(), map: null };
    return { seeds: S.seeds.slice(), map: encodeMap(S.seedIdx, S.seeds.length > 256) };
  }

  // ---------------------------------------------------------------------------------------------
  // label canvas
  const canvas = $("label-canvas"), ctx = canvas.getContext("2d");
  const overlay = $("overlay"), octx = overlay.getContext("2d");
  let image = null, lut = null;

  function setupCanvas() {
    const maxSide = Math.min(560, Math.max(256, Math.floor((window.innerWidth - 380) / 2)));
    S.scale = Math.max(1, maxSide / Math.max(S.W, S.H));
    const dw = Math.round(S.W * S.scale), dh = Math.round(S.H * S.scale);
    canvas.width = S.W; canvas.height = S.H;
    for (const el of [canvas, $("output")]) { el.style.width = dw + "px"; el.style.height = dh + "px"; }
    for (const id of ["image-wrap", "canvas-wrap"]) { $(id).style.width = dw + "px"; $(id).style.height = dh + "px"; }
    for (const id of ["paint-panel", "output-panel"]) $(id).style.width = (dw + 22) + "px";
    const dpr = window.devicePixelRatio || 1;
    overlay.width = Math.round(dw * dpr); overlay.height = Math.round(dh * dpr);
    overlay.style.width = dw + "px"; overlay.style.height = dh + "px";
    image = ctx.createImageData(S.W, S.H);
    lut = new Uint32Array(S.info.num_classes);
    const probe = new Uint8ClampedArray(new Uint32Array([0x01020304]).buffer);
    const little = probe[0] === 4;
    S.info.classes.forEach((c, i) => {
      const [r, g, b] = c.color;
      lut[i] = little ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
    });
  }

  function render(x0 = 0, y0 = 0, x1 = S.W, y1 = S.H) {
    x0 = Math.max(0, x0 | 0); y0 = Math.max(0, y0 | 0); x1 = Math.min(S.W, Math.ceil(x1)); y1 = Math.min(S.H, Math.ceil(y1));
    if (x1 <= x0 || y1 <= y0) return;
    const px = new Uint32Array(image.data.buffer);
    for (let y = y0; y < y1; y++) {
      const row = y * S.W;
      for (let x = x0; x < x1; x++) px[row + x] = lut[S.label[row + x]];
    }
    ctx.putImageData(image, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  function drawOverlay() {
    const dpr = window.devicePixelRatio || 1, k = S.scale * dpr;
    octx.clearRect(0, 0, overlay.width, overlay.height);
    if (S.selection) {
      const { x0, y0, x1, y1 } = S.selection;
      octx.lineWidth = 2 * dpr;
      octx.setLineDash([6 * dpr, 4 * dpr]);
      octx.strokeStyle = "#000"; octx.strokeRect(x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k);
      octx.lineDashOffset = 5 * dpr;
      octx.strokeStyle = "#fff"; octx.strokeRect(x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k);
      octx.setLineDash([]); octx.lineDashOffset = 0;
    }
    if (S.pointer && (S.tool === "brush" || S.tool === "eraser")) {
      octx.lineWidth = 1.5 * dpr;
      octx.strokeStyle = "rgba(255,255,255,.85)";
      octx.beginPath();
      octx.arc(S.pointer.x * k, S.pointer.y * k, Math.max(1, S.size / 2) * k, 0, 2 * Math.PI);
      octx.stroke();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // painting
  const paintClass = () => (S.tool === "eraser" ? S.info.dontcare : S.current);

  function dab(cx, cy, cls) {  // a filled disc of diameter S.size centred at (cx, cy)
    const r = S.size / 2;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(S.W, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(S.H, Math.ceil(cy + r));
    const r2 = Math.max(r * r, 0.5);
    for (let y = y0; y < y1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x < x1; x++) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r2) S.label[y * S.W + x] = cls;
      }
    }
    return [x0, y0, x1, y1];
  }

  function segment(ax, ay, bx, by, cls) {
    const dist = Math.hypot(bx - ax, by - ay), step = Math.max(0.5, S.size / 4);
    const n = Math.max(1, Math.ceil(dist / step));
    let box = [S.W, S.H, 0, 0];
    for (let i = 0; i <= n; i++) {
      const t = i / n, b = dab(ax + (bx - ax) * t, ay + (by - ay) * t, cls);
      box = [Math.min(box[0], b[0]), Math.min(box[1], b[1]), Math.max(box[2], b[2]), Math.max(box[3], b[3])];
    }
    render(...box);
  }

  function floodFill(x, y, cls) {  // 4-connected scanline fill; returns whether anything changed
    const W = S.W, H = S.H, L = S.label, target = L[y * W + x];
    if (target === cls) return false;
    const stack = [[x, y]];
    while (stack.length) {
      let [sx, sy] = stack.pop();
      let i = sy * W + sx;
      if (L[i] !== target) continue;
      while (sx > 0 && L[i - 1] === target) { sx--; i--; }
      let up = false, down = false;
      for (; sx < W && L[i] === target; sx++, i++) {
        L[i] = cls;
        if (sy > 0) {
          const t = L[i - W] === target;
          if (t && !up) stack.push([sx, sy - 1]);
          up = t;
        }
        if (sy < H - 1) {
          const t = L[i + W] === target;
          if (t && !down) stack.push([sx, sy + 1]);
          down = t;
        }
      }
    }
    return true;
  }

  function toModel(e) {
    const r = canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * S.W, y: ((e.clientY - r.top) / r.height) * S.H };
  }
  const clampX = (x) => Math.min(S.W, Math.max(0, Math.round(x)));
  const clampY = (y) => Math.min(S.H, Math.max(0, Math.round(y)));

  canvas.addEventListener("pointerdown", (e) => {
    if (!S.label || e.button > 0) return;
    e.preventDefault();
    const p = toModel(e);
    const xi = Math.min(S.W - 1, Math.max(0, Math.floor(p.x))), yi = Math.min(S.H - 1, Math.max(0, Math.floor(p.y)));
    if (e.altKey) { selectClass(S.label[yi * S.W + xi]); return; }
    if (S.tool === "fill") {
      const before = snapshot();
      if (floodFill(xi, yi, S.current)) { pushUndo(before); render(); changed(); }
      return;
    }
    canvas.setPointerCapture(e.pointerId);
    if (S.tool === "select") {
      S.stroke = { sx: p.x, sy: p.y };
      S.selection = null;
      drawOverlay();
      return;
    }
    if (S.tool === "eraser" && (S.info.dontcare === null || S.info.dontcare === undefined)) {
      showMessage("this model has no don't-care class to erase to", "error", 4000);
      return;
    }
    pushUndo(snapshot());
    S.stroke = { x: p.x, y: p.y };
    segment(p.x, p.y, p.x, p.y, paintClass());
  });

  canvas.addEventListener("pointermove", (e) => {
    if (!S.label) return;
    const p = toModel(e);
    S.pointer = p;
    if (S.stroke && S.tool === "select") {
      const { sx, sy } = S.stroke;
      S.selection = { x0: clampX(Math.min(sx, p.x)), y0: clampY(Math.min(sy, p.y)),
                      x1: clampX(Math.max(sx, p.x)), y1: clampY(Math.max(sy, p.y)) };
    } else if (S.stroke) {
      segment(S.stroke.x, S.stroke.y, p.x, p.y, paintClass());
      S.stroke = { x: p.x, y: p.y };
      if (S.info.last_ms !== null && S.info.last_ms < 120) scheduleSynthesis(40);  // live on fast models
    }
    drawOverlay();
  });

  function endStroke() {
    if (!S.stroke) return;
    const wasSelect = S.tool === "select";
    S.stroke = null;
    if (wasSelect) {
      const s = S.selection;
      if (s && (s.x1 - s.x0 < 1 || s.y1 - s.y0 < 1)) S.selection = null;
      updateButtons(); drawOverlay();
      return;
    }
    changed();
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  canvas.addEventListener("pointerleave", () => { S.pointer = null; drawOverlay(); });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());

  // ---------------------------------------------------------------------------------------------
  // undo: snapshots of the whole state (label + noise)
  function snapshot() {
    return { label: S.label.slice(), seeds: S.seeds.slice(), seedIdx: S.seedIdx.slice(), transfers: S.transfers.slice() };
  }
  function restore(s) { S.label = s.label; S.seeds = s.seeds; S.seedIdx = s.seedIdx; S.transfers = s.transfers; }
  function pushUndo(s) {
    S.undo.push(s);
    if (S.undo.length > MAX_UNDO) S.undo.shift();
    S.redo = [];
    updateButtons();
  }
  function undo() {
    if (!S.undo.length) return;
    S.redo.push(snapshot()); restore(S.undo.pop()); render(); changed();
  }
  function redo() {
    if (!S.redo.length) return;
    S.undo.push(snapshot()); restore(S.redo.pop()); render(); changed();
  }

  // ---------------------------------------------------------------------------------------------
  // noise
  function randomSeed() {
    const a = new Uint32Array(1); crypto.getRandomValues(a);
    return a[0] % (S.info.max_seed + 1);
  }
  function setGlobalSeed(seed) {
    pushUndo(snapshot());
    S.seeds = [seed]; S.seedIdx = new Uint16Array(S.W * S.H);
    changed(0);
  }
  function compactSeeds() {  // drop seeds no pixel uses any more, keep order
    const used = new Uint8Array(S.seeds.length);
    for (let i = 0; i < S.seedIdx.length; i++) used[S.seedIdx[i]] = 1;
    const remap = new Int32Array(S.seeds.length), seeds = [];
    for (let k = 0; k < S.seeds.length; k++) if (used[k]) { remap[k] = seeds.length; seeds.push(S.seeds[k]); }
    if (seeds.length === S.seeds.length) return;
    for (let i = 0; i < S.seedIdx.length; i++) S.seedIdx[i] = remap[S.seedIdx[i]];
    S.seeds = seeds;
  }
  function resampleWhere(pred, what) {
    let n = 0;
    for (let i = 0; i < S.label.length; i++) if (pred(i)) n++;
    if (!n) { showMessage(`nothing to resample: ${what} covers no pixel`, "error", 4000); return; }
    if (S.seeds.length >= S.info.max_seeds) compactSeeds();
    if (S.seeds.length >= S.info.max_seeds) {
      showMessage("too many local resamples: press 'New image' to start over", "error", 6000); return;
    }
    pushUndo(snapshot());
    const k = S.seeds.length;
    S.seeds.push(randomSeed());
    for (let i = 0; i < S.label.length; i++) if (pred(i)) S.seedIdx[i] = k;
    compactSeeds();
    changed(0);
  }
  function resampleClass() {
    const c = S.current;
    resampleWhere((i) => S.label[i] === c, `class "${S.info.classes[c].name}"`);
  }
  function resampleRegion() {
    const s = S.selection;
    if (!s) { showMessage("select a rectangle first (Select tool, S)", "error", 4000); return; }
    resampleWhere((i) => { const x = i % S.W, y = (i / S.W) | 0; return x >= s.x0 && x < s.x1 && y >= s.y0 && y < s.y1; },
                  "the selection");
  }

  // ---------------------------------------------------------------------------------------------
  // synthesis: debounced, at most one request in flight, the newest state wins, stale answers dropped
  function changed(delay = 120) { updatePresence(); updateButtons(); updateNoiseStatus(); scheduleSynthesis(delay); }

  function scheduleSynthesis(delay = 120) {
    clearTimeout(net.timer);
    net.pending = true;
    net.timer = setTimeout(runSynthesis, delay);
  }

  async function runSynthesis() {
    net.pending = false;
    if (net.inflight) { net.dirty = true; return; }
    net.inflight = true; net.dirty = false;
    const seq = ++net.seq;
    setBusy(true);
    const body = { label: encodeMap(S.label, wideLabels()), noise: noisePayload() };
    if (S.photo) body.photo = { id: S.photo.id, paste_back: S.pasteBack, transfers: S.transfers.slice() };
    const out = $("output");
    try {
      const res = await api("/api/synthesize", body);
      if (seq > net.shown) {
        net.shown = seq;
        const img = new Image(); img.src = res.image;
        try { await img.decode(); } catch (e) { /* shown anyway */ }
        out.src = res.image;
        out.dataset.version = String(seq);
        out.dataset.seed = String(res.seeds[0]);
        S.info.last_ms = res.ms;
        $("timing").textContent = `last image: ${res.ms.toFixed(0)} ms on ${S.info.device}`;
        const dl = $("download-image");
        dl.href = res.image;
        dl.download = `oasis_seed${res.seeds[0]}${res.seeds.length > 1 ? "_local" + (res.seeds.length - 1) : ""}.png`;
        if (res.warning) showMessage(res.warning, "error", 8000);
        else if ($("message").dataset.kind === "synth") hideMessage();
      }
    } catch (e) {
      showMessage(e.message, "error");
      $("message").dataset.kind = "synth";
    } finally {
      net.inflight = false;
      if (net.dirty) runSynthesis();
      else setBusy(false);
    }
  }

  function setBusy(on) {
    const out = $("output");
    out.dataset.state = on ? "busy" : "idle";
    out.classList.toggle("stale", on);
    clearInterval(net.tick);
    if (!on) { $("busy").classList.add("hidden"); return; }
    net.started = performance.now();
    net.tick = setInterval(() => {  // the spinner appears only when the model is slow
      const s = (performance.now() - net.started) / 1000;
      if (s > 0.25) $("busy").classList.remove("hidden");
      $("elapsed").textContent = s.toFixed(1) + " s";
    }, 100);
  }

  // ---------------------------------------------------------------------------------------------
  // palette and buttons
  function buildPalette() {
    const ul = $("palette");
    ul.textContent = "";
    S.info.classes.forEach((c) => {
      const li = document.createElement("li");
      li.dataset.id = String(c.id);
      li.setAttribute("role", "option");
      li.title = `class ${c.id}: ${c.name}${c.id === S.info.dontcare ? " (don't care)" : ""}`;
      const id = document.createElement("span"); id.className = "cid"; id.textContent = c.id;
      const sw = document.createElement("span"); sw.className = "swatch";
      sw.style.background = `rgb(${c.color.join(",")})`;
      const name = document.createElement("span"); name.className = "cname";
      name.textContent = c.name + (c.id === S.info.dontcare ? " (don't care)" : "");
      li.append(id, sw, name);
      li.addEventListener("click", () => selectClass(c.id));
      ul.append(li);
    });
  }

  function selectClass(id) {
    S.current = id;
    const c = S.info.classes[id];
    for (const li of $("palette").children) li.classList.toggle("selected", Number(li.dataset.id) === id);
    $("current-swatch").style.background = `rgb(${c.color.join(",")})`;
    $("current-name").textContent = `${c.id} · ${c.name}`;
    $("resample-class").textContent = `Resample “${c.name}”`;
    $("transfer-class").textContent = `Transfer “${c.name}” from the source`;
    if (S.tool === "eraser") setTool("brush");
    updateButtons();
  }

  function updatePresence() {
    const seen = new Uint8Array(S.info.num_classes);
    for (let i = 0; i < S.label.length; i++) seen[S.label[i]] = 1;
    S.present = seen;
    for (const li of $("palette").children) li.classList.toggle("present", !!seen[Number(li.dataset.id)]);
  }

  function updateButtons() {
    $("undo").disabled = !S.undo.length;
    $("redo").disabled = !S.redo.length;
    const noise = S.info && S.info.noise;
    $("resample-region").disabled = !noise || !S.selection;
    $("resample-class").disabled = !noise || !(S.present && S.present[S.current]);
    $("new-image").disabled = !noise;
    $("invert").disabled = $("invert-source").disabled = P.inverting || !P.file || !P.labelFile || !noise;
    $("transfer-class").disabled = !S.photo || !S.source || !(S.present && S.present[S.current]);
  }

  function updateNoiseStatus() {
    if (!S.info.noise) { $("noise-status").textContent = "this model ignores noise: one image per label map"; return; }
    $("seed").value = String(S.seeds[0]);
    const local = S.seeds.length - 1;
    const base = S.photo ? "the photo's noise" : `seed ${S.seeds[0]}`;
    const parts = [];
    if (local) parts.push(`${local} local resample${local > 1 ? "s" : ""}`);
    if (S.photo && S.transfers.length) parts.push(`${S.transfers.length} transfer${S.transfers.length > 1 ? "s" : ""}`);
    $("noise-status").textContent = parts.length ? `${base} with ${parts.join(" and ")}` : base;
  }

  function setTool(tool) {
    if (tool === "eraser" && (S.info.dontcare === null || S.info.dontcare === undefined)) {
      showMessage("this model has no don't-care class, so there is no eraser", "error", 4000); return;
    }
    S.tool = tool;
    for (const b of document.querySelectorAll("#tools .tool")) b.classList.toggle("active", b.dataset.tool === tool);
    canvas.style.cursor = tool === "select" ? "cell" : "crosshair";
    drawOverlay();
  }

  function setSize(v) {
    const max = Number($("brush-size").max);
    S.size = Math.min(max, Math.max(1, Math.round(v)));
    $("brush-size").value = String(S.size);
    $("brush-size-value").textContent = String(S.size);
    drawOverlay();
  }

  function setLabel(arr, pushHistory = true) {
    if (pushHistory) pushUndo(snapshot());
    S.label = arr;
    render();
    changed(0);
  }

  // ---------------------------------------------------------------------------------------------
  // files
  async function uploadLabel(file) {
    if (!file) return;
    if (file.size > S.info.max_upload_bytes) {
      showMessage(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB; the limit is ${S.info.max_upload_bytes / 2 ** 20} MiB`);
      return;
    }
    try {
      const res = await api("/api/decode-label", { file: await readBase64(file), name: file.name });
      setLabel(decodeMap(res.label));
      const notes = res.notes && res.notes.length ? ": " + res.notes.join("; ") : "";
      showMessage(`loaded ${file.name}${notes}`, "info", 5000);
    } catch (e) {
      showMessage(`${file.name}: ${e.message}`);
    }
  }

  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(String(r.result).split(",")[1] || "");
      r.onerror = () => reject(new Error(`cannot read ${file.name}`));
      r.readAsDataURL(file);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // photo mode: invert a photo (a job on the server, polled), then edit its label map
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  function showPhotoFiles() {
    const a = P.file ? P.file.name : "no photo", b = P.labelFile ? P.labelFile.name : "no label map";
    $("photo-files").textContent = `${a} · ${b}`;
    updateButtons();
  }

  function setInverting(on, state) {
    P.inverting = on;
    $("invert-progress").classList.toggle("hidden", !on);
    if (state) $("invert-status").dataset.state = state;
    updateButtons();
  }

  async function startInversion(asSource) {
    const steps = Number($("invert-steps").value);
    if (!Number.isInteger(steps) || steps < 1 || steps > 5000) {
      showMessage("steps must be a whole number from 1 to 5000", "error", 5000); return;
    }
    setInverting(true, "running");
    $("invert-progress").value = 0;
    $("invert-status").textContent = "sending…";
    let res;
    try {
      const [image, label] = await Promise.all([readBase64(P.file), readBase64(P.labelFile)]);
      res = await api("/api/invert", { image, label, steps, name: P.file.name, label_name: P.labelFile.name });
    } catch (e) {
      showMessage(e.message); $("invert-status").textContent = ""; setInverting(false, "error"); return;
    }
    const name = P.file.name;
    for (;;) {
      await sleep(200);
      let st;
      try { st = await api(`/api/invert?job=${encodeURIComponent(res.job)}`); } catch (e) {
        showMessage(e.message); setInverting(false, "error"); return;
      }
      $("invert-progress").max = st.steps; $("invert-progress").value = st.step;
      if (st.state === "running") {
        $("invert-status").textContent = `inverting ${name}: step ${st.step} / ${st.steps}, ${st.seconds.toFixed(1)} s`;
        continue;
      }
      if (st.state === "error") { showMessage(st.error); $("invert-status").textContent = ""; setInverting(false, "error"); return; }
      const ph = { ...st.photo, name };
      const lp = ph.lpips === null || ph.lpips === undefined ? "" : `, LPIPS ${ph.lpips.toFixed(3)}`;
      const notes = ph.notes && ph.notes.length ? ` (${ph.notes.join("; ")})` : "";
      if (asSource) {
        S.source = ph;
        $("source-info").textContent = `transfer source: ${name} (PSNR ${ph.psnr.toFixed(1)} dB)`;
        $("invert-status").textContent = `source ${name} inverted in ${ph.seconds.toFixed(1)} s`;
      } else {
        openPhoto(ph);
        $("invert-status").textContent = `${name}: reconstruction PSNR ${ph.psnr.toFixed(1)} dB${lp} in ${ph.seconds.toFixed(1)} s${notes}`;
      }
      setInverting(false, "done");
      return;
    }
  }

  function openPhoto(ph) {
    S.photo = ph; S.transfers = [];
    S.undo = []; S.redo = [];  // the history belongs to the previous picture
    S.seeds = [S.seeds[0]]; S.seedIdx = new Uint16Array(S.W * S.H);
    S.label = decodeMap(ph.label);
    $("photo-original").src = ph.image; $("photo-recon").src = ph.reconstruction;
    $("photo-view").classList.remove("hidden");
    render(); changed(0);
  }

  function closePhoto() {
    S.photo = null; S.transfers = [];
    $("photo-view").classList.add("hidden");
    changed(0);
  }

  function transferClass() {
    const c = S.current, name = S.info.classes[c].name;
    if (!S.source || !S.photo) return;
    if (!S.source.classes_present.includes(c)) { showMessage(`the source photo has no “${name}”`, "error", 5000); return; }
    pushUndo(snapshot());
    S.transfers = S.transfers.filter((t) => t.class !== c).concat([{ photo: S.source.id, class: c }]);
    for (let i = 0; i < S.label.length; i++) if (S.label[i] === c) S.seedIdx[i] = 0;  // the transfer wins
    compactSeeds();
    changed(0);
  }

  async function downloadLabel() {
    try {
      const blob = await api("/api/label-png", { label: encodeMap(S.label, wideLabels()) }, true);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url; a.download = "label.png";
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { showMessage(e.message); }
  }

  async function loadExample(variant, pushHistory = true) {
    try {
      const res = await api(`/api/example?variant=${variant}`);
      setLabel(decodeMap(res.label), pushHistory);
    } catch (e) { showMessage(e.message); }
  }

  // ---------------------------------------------------------------------------------------------
  // wiring
  for (const b of document.querySelectorAll("#tools .tool")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("brush-size").addEventListener("input", (e) => setSize(Number(e.target.value)));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", () => setLabel(new Uint16Array(S.W * S.H).fill(S.current)));
  $("upload").addEventListener("change", (e) => { uploadLabel(e.target.files[0]); e.target.value = ""; });
  $("example").addEventListener("click", () => loadExample(++S.exampleVariant));
  $("download-label").addEventListener("click", downloadLabel);
  $("new-image").addEventListener("click", () => setGlobalSeed(randomSeed()));
  $("resample-class").addEventListener("click", resampleClass);
  $("resample-region").addEventListener("click", resampleRegion);
  $("photo-file").addEventListener("change", (e) => { P.file = e.target.files[0] || null; e.target.value = ""; showPhotoFiles(); });
  $("photo-label-file").addEventListener("change", (e) => { P.labelFile = e.target.files[0] || null; e.target.value = ""; showPhotoFiles(); });
  $("invert").addEventListener("click", () => startInversion(false));
  $("invert-source").addEventListener("click", () => startInversion(true));
  $("transfer-class").addEventListener("click", transferClass);
  $("close-photo").addEventListener("click", closePhoto);
  $("paste-back").addEventListener("change", (e) => { S.pasteBack = e.target.checked; changed(0); });
  $("download-image").addEventListener("click", (e) => { if (!$("output").src) e.preventDefault(); });
  const applySeed = () => {
    const txt = $("seed").value.trim();
    if (!/^\d+$/.test(txt) || Number(txt) > S.info.max_seed) {
      showMessage(`the seed must be a whole number from 0 to ${S.info.max_seed}`, "error", 5000);
      return;
    }
    setGlobalSeed(Number(txt));
  };
  $("set-seed").addEventListener("click", applySeed);
  $("seed").addEventListener("keydown", (e) => { if (e.key === "Enter") applySeed(); });
  $("class-search").addEventListener("input", (e) => {
    const q = e.target.value.trim().toLowerCase();
    for (const li of $("palette").children) {
      const c = S.info.classes[Number(li.dataset.id)];
      li.classList.toggle("hidden", !!q && !c.name.toLowerCase().includes(q) && String(c.id) !== q);
    }
  });
  document.addEventListener("keydown", (e) => {
    if (!S.info || e.target instanceof HTMLInputElement) return;
    const k = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && k === "z") { e.preventDefault(); e.shiftKey ? redo() : undo(); return; }
    if ((e.ctrlKey || e.metaKey) && k === "y") { e.preventDefault(); redo(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (k === "b") setTool("brush");
    else if (k === "f") setTool("fill");
    else if (k === "e") setTool("eraser");
    else if (k === "s") setTool("select");
    else if (k === "n" && S.info.noise) setGlobalSeed(randomSeed());
    else if (k === "[") setSize(S.size - (S.size > 10 ? 4 : 1));
    else if (k === "]") setSize(S.size + (S.size >= 10 ? 4 : 1));
    else if (k === "escape") { S.selection = null; updateButtons(); drawOverlay(); }
  });

  async function init() {
    try {
      S.info = await api("/api/info");
    } catch (e) {
      showMessage(`cannot load the model description: ${e.message}`);
      return;
    }
    const I = S.info;
    S.W = I.width; S.H = I.height;
    $("model-info").textContent = `${I.title} · ${I.preset} · ${I.num_classes} classes · ${I.width}×${I.height} · ${I.device}`;
    document.title = `OASIS painter · ${I.title}`;
    $("brush-size").max = String(Math.max(16, Math.round(Math.max(I.width, I.height) / 4)));
    setSize(Math.max(2, Math.round(Math.max(I.width, I.height) / 20)));
    $("invert-steps").value = String(I.photo_steps || 200);
    setupCanvas();
    buildPalette();
    S.seeds = [0];
    S.seedIdx = new Uint16Array(S.W * S.H);
    const first = I.classes.find((c) => c.id !== I.dontcare) || I.classes[0];
    S.label = new Uint16Array(S.W * S.H);
    updatePresence();
    selectClass(first.id);
    if (I.dontcare === null || I.dontcare === undefined) document.querySelector('[data-tool="eraser"]').disabled = true;
    updateNoiseStatus();
    await loadExample(0, false);
  }

  let resizeTimer = 0;
  window.addEventListener("resize", () => {  // keep the canvas and image fitting the window
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (S.label) { setupCanvas(); render(); drawOverlay(); } }, 150);
  });

  // for tests and the console: read-only views of the state
  window.painter = {
    get state() { return S; },
    labelBase64: () => encodeMap(S.label, wideLabels()).data,
    seeds: () => S.seeds.slice(),
    photo: () => (S.photo ? { id: S.photo.id, psnr: S.photo.psnr, transfers: S.transfers.slice() } : null),
    idle: () => !net.inflight && !net.pending && !net.dirty && $("output").dataset.state === "idle",
  };
  init();
})();
