// fer_serve's page. Two modes share one renderer:
//   photo: the chosen or dropped file is sent as is to POST /api/predict (its exact bytes, so the
//          boxes are in the coordinates the server decoded) and drawn on a canvas with its faces;
//   live:  webcam frames (getUserMedia) are drawn to a canvas, encoded as JPEG and sent at most
//          `rate` times a second with never more than one request in flight; the boxes of each
//          answer are drawn over the video. Each camera start is a session (?session=ID, a
//          random id): the server follows the faces across its frames (apps/inference/
//          live_tracks.h), so each face keeps a track id ("#2"), and with "Smooth over time"
//          its probabilities are averaged over its frames (&smooth=).
//   video: the chosen video is sent to POST /api/video; the answer (sampled frames, faces with
//          track ids, per-track summaries) drives boxes over the playing video and a chart of
//          the emotions over time under it.
// Every face gets a card with its label and a bar per class. A failed request shows the
// server's JSON {"error": ...} message in the banner. With "Run the model in this browser" (photo
// and live) the server's boxes are kept and each face is read by the model in onnxruntime-web.
"use strict";

const EMOTION_COLORS = {
  angry: "#e5484d", disgust: "#30a46c", fear: "#8e4ec6", happy: "#f0a000",
  sad: "#3e63dd", surprise: "#d6409f", neutral: "#7c7f88",
};
const FALLBACK_COLORS = ["#3e63dd", "#e5484d", "#30a46c", "#f0a000", "#8e4ec6", "#d6409f", "#12a594"];
const LIVE_CAPTURE_WIDTH = 640;  // frames are downscaled to this width before upload
const LIVE_SMOOTHING = 0.5;      // p = s p_before + (1 - s) p_now, per face track (as fer_serve's videos)
const LIVE_TRACK_MEMORY_MS = 10000;  // in-browser smoothing: a track unseen this long is forgotten
const DISPLAY_MIN_SIDE = 480, DISPLAY_MAX_SIDE = 1600;  // photo canvas size range, pixels

const $ = (id) => document.getElementById(id);
const state = { classes: [], lastFile: null, photoToken: 0, live: null, clip: null };

function colorOf(emotion, index) {
  return EMOTION_COLORS[emotion] || FALLBACK_COLORS[index % FALLBACK_COLORS.length];
}
function percent(p) { return `${Math.round(p * 100)}%`; }
function labelOf(face) { return `${face.emotion} ${percent(face.confidence)}`; }
// "#3" for a face that has a track id (live and video modes), else null.
function trackOf(face) { return Number.isInteger(face.track) ? `#${face.track}` : null; }

// ---- errors ----------------------------------------------------------------------------------
function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}
function clearError() { $("error").hidden = true; }

// POST an image (raw bytes with their content type, or a FormData with a "file" field) to the
// API, with more query parameters in `params` (session, smooth); resolves to the parsed answer or
// throws an Error with the server's message and status.
async function predict(body, contentType, detect, signal, params = {}) {
  const query = new URLSearchParams(params);
  if (!detect) query.set("detect", "0");
  const url = `/api/predict${query.toString() ? `?${query}` : ""}`;
  let response;
  try {
    // A FormData body (contentType null) sets its own multipart Content-Type with the boundary.
    const headers = contentType ? { "Content-Type": contentType } : {};
    response = await fetch(url, { method: "POST", body, headers, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new Error("cannot reach the server (is fer_serve still running?)");
  }
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) {
    const why = data && data.error ? data.error : `HTTP ${response.status} ${response.statusText}`;
    throw new Error(`The server could not read this image (${response.status}): ${why}`);
  }
  if (!data || !Array.isArray(data.faces)) throw new Error("the server's answer is not the expected JSON");
  return data;
}

// ---- rendering -------------------------------------------------------------------------------
// Boxes and "emotion 93%" labels; `scale` maps the answer's pixel coordinates onto the canvas.
function drawFaces(ctx, faces, scale) {
  const w = ctx.canvas.width, h = ctx.canvas.height;
  const line = Math.max(2, Math.round(Math.max(w, h) / 320));
  const fontPx = Math.max(12, Math.round(Math.max(w, h) / 38));
  ctx.font = `600 ${fontPx}px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif`;
  ctx.textBaseline = "middle";
  faces.forEach((face, i) => {
    const [bx, by, bw, bh] = face.box.map((v) => v * scale);
    const color = colorOf(face.emotion, i);
    ctx.lineWidth = line;
    ctx.strokeStyle = color;
    ctx.shadowColor = "rgba(0, 0, 0, 0.55)";  // keeps the box visible on any background
    ctx.shadowBlur = line * 1.5;
    ctx.strokeRect(bx, by, bw, bh);
    ctx.shadowBlur = 0;
    const which = trackOf(face) || (faces.length > 1 ? `${i + 1}` : null);
    const text = which ? `${which}  ${labelOf(face)}` : labelOf(face);
    const padX = Math.round(fontPx * 0.45), tagH = Math.round(fontPx * 1.5);
    const tagW = ctx.measureText(text).width + 2 * padX;
    const tagX = Math.min(Math.max(0, bx - line / 2), Math.max(0, w - tagW));
    const tagY = by - tagH >= 0 ? by - tagH : Math.min(by + bh, h - tagH);  // above, else below
    ctx.fillStyle = color;
    ctx.fillRect(tagX, tagY, tagW, tagH);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, tagX + padX, tagY + tagH / 2);
  });
}

// One card per face: label and a bar per class, in the model's class order.
function renderCards(container, faces, emptyMessage) {
  container.replaceChildren();
  if (faces.length === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = emptyMessage;
    container.append(p);
    return;
  }
  faces.forEach((face, i) => {
    const card = document.createElement("article");
    card.className = "face";
    card.dataset.emotion = face.emotion;
    card.dataset.confidence = String(face.confidence);
    card.dataset.probabilities = JSON.stringify(face.emotions);
    if (trackOf(face)) card.dataset.track = String(face.track);
    card.style.setProperty("--face-color", colorOf(face.emotion, i));
    const header = document.createElement("header");
    const which = document.createElement("span");
    which.className = "which";
    which.textContent = trackOf(face) ? `Face ${trackOf(face)}` : faces.length > 1 ? `Face ${i + 1}` : "Face";
    const label = document.createElement("strong");
    label.className = "label";
    label.textContent = labelOf(face);
    header.append(which, label);
    const bars = document.createElement("ul");
    bars.className = "bars";
    const names = state.classes.length ? state.classes : Object.keys(face.emotions);
    for (const name of names) {
      const p = face.emotions[name] ?? 0;
      const li = document.createElement("li");
      if (name === face.emotion) li.className = "best";
      const n = document.createElement("span");
      n.className = "name";
      n.textContent = name;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.setProperty("--p", String(p));
      fill.style.setProperty("--bar-color", colorOf(name, 0));
      track.append(fill);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = percent(p);
      li.append(n, track, pct);
      bars.append(li);
    }
    card.append(header, bars);
    container.append(card);
  });
}

function facesSummary(result) {
  const n = result.faces.length;
  return `${n} face${n === 1 ? "" : "s"} · ${result.width}×${result.height} · ${result.elapsed_ms.toFixed(1)} ms on the server`;
}

// ---- the model in this browser (onnxruntime-web) -----------------------------------------------
// With "Run the model in this browser" the server still finds the faces (POST /api/predict gives
// the boxes), and the page reads each face itself: it decodes the photo, crops, resizes and
// equalises each face exactly as the server's FaceAnalyzer does (apps/inference/face_analyzer.cpp,
// data/image.cpp, data/preprocess.cpp: the same float32 arithmetic and roundings), and runs the
// model that GET /api/model.onnx exports, in WebAssembly, one face per session.run, timed with
// performance.now(). GET /api/model.json says how to feed it; onnxruntime-web's files come from
// the server (/ort/), never from a CDN.
const browserModel = { info: null, session: null, ort: null, loading: null, unavailable: "" };

// Is the option possible here? Disables the checkboxes with the server's reason when not.
async function probeBrowserModel() {
  let reason = "";
  try {
    const response = await fetch("/api/model.json", { cache: "no-store" });
    const info = await response.json();
    if (!info.available) reason = info.reason || "unavailable";
    else browserModel.info = info;
  } catch (e) {
    reason = `cannot read /api/model.json (${e.message})`;
  }
  if (typeof WebAssembly !== "object") reason = "this browser has no WebAssembly";
  browserModel.unavailable = reason;
  for (const id of ["in-browser", "live-in-browser"]) {
    $(id).disabled = !!reason;
    $(id).closest("label").title = reason ? `Unavailable: ${reason}` : "";
  }
  if (reason) $("in-browser-hint").textContent = `(unavailable: ${reason})`;
}

// onnxruntime-web and the model, loaded once; the first run is a warm-up (it allocates), so that
// the latencies shown are those of the model, not of the set-up.
function loadBrowserModel() {
  if (browserModel.loading) return browserModel.loading;
  browserModel.loading = (async () => {
    if (browserModel.unavailable) throw new Error(`The in-browser model is unavailable: ${browserModel.unavailable}`);
    const info = browserModel.info || await (await fetch("/api/model.json", { cache: "no-store" })).json();
    if (!info.available) throw new Error(`The in-browser model is unavailable: ${info.reason}`);
    const ort = await import(info.ort);
    ort.env.wasm.wasmPaths = "/ort/";
    ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation; one face is small anyway
    const response = await fetch(info.onnx, { cache: "no-store" });
    if (!response.ok) throw new Error(`GET ${info.onnx}: HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    const side = info.input_side;
    await session.run({ input: new ort.Tensor("float32", new Float32Array(side * side), [1, 1, side, side]) });
    Object.assign(browserModel, { info, session, ort });
    return browserModel;
  })();
  browserModel.loading.catch(() => { browserModel.loading = null; });  // a later try may succeed
  return browserModel.loading;
}

// Gray pixels as the server's decoder (stb_image, one channel) makes them. A JPEG's gray is its
// luma channel Y, which the browser has turned into RGB: Y = 0.299 R + 0.587 G + 0.114 B undoes
// that (to the rounding of the RGB conversion). A PNG's gray is stb_image's (77 R + 150 G + 29 B) >> 8.
// Colour profiles are not applied (the server ignores them too).
async function decodeGray(file) {
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const png = head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47;
  const bitmap = await createImageBitmap(file, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  return grayFromRgba(ctx.getImageData(0, 0, bitmap.width, bitmap.height), png);
}

function grayFromRgba(imageData, stbLuma) {
  const { width, height, data } = imageData;
  const pixels = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < pixels.length; i++, j += 4) {
    const r = data[j], g = data[j + 1], b = data[j + 2];
    pixels[i] = stbLuma ? (77 * r + 150 * g + 29 * b) >> 8 : Math.min(255, Math.round(0.299 * r + 0.587 * g + 0.114 * b));
  }
  return { width, height, pixels };
}

// data/image.cpp's axis_taps: the source samples and float32 weights of each output sample along
// one axis; area averaging when shrinking, bilinear between pixel centres when growing.
function axisTaps(inSize, outSize) {
  const taps = [];
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const t = { first: 0, weights: [] };
    if (scale > 1) {
      const lo = o * scale, hi = (o + 1) * scale;
      t.first = Math.floor(lo);
      const last = Math.min(inSize - 1, Math.ceil(hi) - 1);
      for (let i = t.first; i <= last; i++) {
        const cover = Math.min(hi, i + 1) - Math.max(lo, i);
        t.weights.push(Math.fround(cover / scale));
      }
    } else {
      const x = Math.min(Math.max((o + 0.5) * scale - 0.5, 0), inSize - 1);
      const x0 = Math.min(Math.floor(x), inSize - 1);
      const f = x - x0;
      t.first = x0;
      t.weights = x0 + 1 < inSize && f > 0 ? [Math.fround(1 - f), Math.fround(f)] : [1];
    }
    taps.push(t);
  }
  return taps;
}

// data::resize_gray of the region [x0, x1) x [y0, y1) of `image`: rows first, then columns, each
// sum accumulated in float32 as the C++ does, rounded half away from zero.
function resizeRegion(image, x0, y0, x1, y1, outW, outH) {
  const w = x1 - x0, h = y1 - y0, out = new Uint8Array(outW * outH);
  if (w === outW && h === outH) {
    for (let y = 0; y < h; y++) out.set(image.pixels.subarray((y0 + y) * image.width + x0, (y0 + y) * image.width + x1), y * w);
    return out;
  }
  const f = Math.fround, tx = axisTaps(w, outW), ty = axisTaps(h, outH);
  const rows = new Float32Array(h * outW);
  for (let y = 0; y < h; y++) {
    const row = (y0 + y) * image.width + x0;
    for (let x = 0; x < outW; x++) {
      let acc = 0;
      const { first, weights } = tx[x];
      for (let k = 0; k < weights.length; k++) acc = f(acc + f(weights[k] * image.pixels[row + first + k]));
      rows[y * outW + x] = acc;
    }
  }
  for (let y = 0; y < outH; y++) {
    const { first, weights } = ty[y];
    for (let x = 0; x < outW; x++) {
      let acc = 0;
      for (let k = 0; k < weights.length; k++) acc = f(acc + f(weights[k] * rows[(first + k) * outW + x]));
      out[y * outW + x] = Math.min(255, Math.max(0, Math.round(acc)));
    }
  }
  return out;
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// data::equalize_hist_lut: OpenCV's equalizeHist, float32 scale and round half to even.
function equalizeLut(pixels) {
  const lut = new Uint8Array(256).map((_, v) => v);
  const hist = new Uint32Array(256);
  for (const v of pixels) hist[v]++;
  let first = 0;
  while (hist[first] === 0) first++;
  const cdfMin = hist[first], n = pixels.length;
  if (cdfMin === n) return lut;
  const scale = Math.fround(255 / Math.fround(n - cdfMin));
  let cdf = cdfMin;
  for (let v = 0; v <= first; v++) lut[v] = 0;
  for (let v = first + 1; v < 256; v++) {
    cdf += hist[v];
    lut[v] = Math.min(255, Math.max(0, roundHalfEven(Math.fround(Math.fround(cdf - cdfMin) * scale))));
  }
  return lut;
}

// The model input of one face (FaceAnalyzer::face_input, then predict_batch's centre crop).
function faceInput(gray, box, detect, info) {
  let x0 = 0, y0 = 0, x1 = gray.width, y1 = gray.height;
  if (detect) {
    const [bx, by, bw, bh] = box;
    const mx = Math.fround(Math.fround(info.margin) * bw), my = Math.fround(Math.fround(info.margin) * bh);
    x0 = Math.max(0, Math.floor(bx - mx));
    y0 = Math.max(0, Math.floor(by - my));
    x1 = Math.min(gray.width, Math.ceil(bx + bw + mx));
    y1 = Math.min(gray.height, Math.ceil(by + bh + my));
  }
  const S = info.face_side;
  const face = resizeRegion(gray, x0, y0, x1, y1, S, S);
  const table = new Float32Array(256);
  const lut = info.equalize ? equalizeLut(face) : null;
  for (let v = 0; v < 256; v++) table[v] = (lut ? lut[v] : v) / 255;
  const inv = Math.fround(1 / info.std);
  const side = info.input_side, off = (S - side) >> 1;
  const input = new Float32Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const v = table[face[(y + off) * S + x + off]];
      input[y * side + x] = info.standardize ? Math.fround(Math.fround(v - info.mean) * inv) : v;
    }
  }
  return input;
}

// The server's faces (their boxes) read again in this browser: the same fields, the
// probabilities of the model run here, and the milliseconds of each session.run.
async function classifyInBrowser(gray, faces, detect) {
  const { info, session, ort } = await loadBrowserModel();
  const side = info.input_side, out = [], runMs = [];
  for (const face of faces) {
    const input = new ort.Tensor("float32", faceInput(gray, face.box, detect, info), [1, 1, side, side]);
    const started = performance.now();
    const result = await session.run({ input });
    runMs.push(performance.now() - started);
    const p = Array.from(result[info.output].data);
    const best = p.indexOf(Math.max(...p));
    const emotions = Object.fromEntries(info.classes.map((name, c) => [name, p[c]]));
    out.push({ box: face.box, emotion: info.classes[best], confidence: p[best], emotions, track: face.track });
  }
  const meanMs = runMs.length ? runMs.reduce((a, b) => a + b, 0) / runMs.length : 0;
  return { faces: out, runMs, meanMs };
}

function browserSummary(run) {
  if (!run.faces.length) return "in this browser: no face to read";
  const note = browserModel.info.tta !== "none" ? ` (the server also averages ${browserModel.info.tta} views; this does not)` : "";
  return `in this browser (onnxruntime-web, WebAssembly): ${run.meanMs.toFixed(2)} ms per face` +
         ` (session.run, mean of ${run.faces.length})${note}`;
}

// ---- photo mode ------------------------------------------------------------------------------
async function decodeForDisplay(file) {
  // The server ignores EXIF orientation, so draw the pixels unrotated too: boxes then line up.
  try { return await createImageBitmap(file, { imageOrientation: "none" }); } catch (_) { /* older API */ }
  return createImageBitmap(file);
}

async function analyzePhoto(file) {
  const token = ++state.photoToken;  // a newer photo supersedes this one
  state.lastFile = file;
  clearError();
  const canvas = $("photo-canvas"), status = $("photo-status"), cards = $("photo-faces");
  $("photo-busy").hidden = false;
  status.textContent = `Reading ${file.name}…`;
  try {
    const form = new FormData();  // multipart, so that the server's messages name the file
    form.append("file", file, file.name);
    const detect = $("detect").checked, inBrowser = $("in-browser").checked;
    const [result, bitmap] = await Promise.all([
      predict(form, null, detect),
      decodeForDisplay(file).catch(() => null),
    ]);
    if (token !== state.photoToken) return;
    // The option: the same faces, their emotions from the model run here.
    let run = null;
    $("browser-status").textContent = inBrowser ? "Running the model in this browser…" : "";
    if (inBrowser) {
      run = await classifyInBrowser(await decodeGray(file), result.faces, detect);
      if (token !== state.photoToken) return;
    }
    const faces = run ? run.faces : result.faces;
    if (!bitmap) throw new Error("this browser cannot display the image");
    // Small crops are enlarged for display and huge photos drawn smaller (the labels stay legible).
    const side = Math.max(bitmap.width, bitmap.height);
    const scale = side < DISPLAY_MIN_SIDE ? DISPLAY_MIN_SIDE / side : Math.min(1, DISPLAY_MAX_SIDE / side);
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    drawFaces(ctx, faces, canvas.width / result.width);
    canvas.hidden = false;
    canvas.dataset.faces = String(faces.length);
    $("drop-empty").hidden = true;
    $("drop").classList.add("has-image");
    renderCards(cards, faces, detect
      ? "No face found. Try a photo with a larger, frontal face, or untick “Find faces” for a cropped face."
      : "No answer for this image.");
    status.textContent = `${file.name}: ${facesSummary(result)}`;
    const browserStatus = $("browser-status");
    browserStatus.textContent = run ? browserSummary(run) : "";
    browserStatus.dataset.msPerFace = run ? String(run.meanMs) : "";
  } catch (e) {
    if (token !== state.photoToken) return;
    showError(e.message);
    status.textContent = "";
    $("browser-status").textContent = "";
    canvas.hidden = true;  // no stale picture or cards next to the error
    $("drop-empty").hidden = false;
    $("drop").classList.remove("has-image");
    cards.replaceChildren();
  } finally {
    if (token === state.photoToken) $("photo-busy").hidden = true;
  }
}

function setupPhoto() {
  const input = $("file"), drop = $("drop");
  input.addEventListener("change", () => {
    if (input.files.length) analyzePhoto(input.files[0]);
    input.value = "";  // choosing the same file again still triggers a change
  });
  $("detect").addEventListener("change", () => { if (state.lastFile) analyzePhoto(state.lastFile); });
  $("in-browser").addEventListener("change", () => { if (state.lastFile) analyzePhoto(state.lastFile); });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("dragging"); });
  }
  drop.addEventListener("drop", (e) => {
    const file = e.dataTransfer.files[0];
    if (file) analyzePhoto(file);
  });
  // Dropping a file elsewhere on the page must not navigate away from it.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

// ---- live mode -------------------------------------------------------------------------------
function cameraErrorMessage(e) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
    return "This browser gives no camera access here: the page must be opened over https or from localhost.";
  switch (e && e.name) {
    case "NotAllowedError": return "Camera permission was denied. Allow the camera for this page and try again.";
    case "NotFoundError": return "No camera was found.";
    case "NotReadableError": return "The camera is in use by another application.";
    default: return `Cannot open the camera: ${e && e.message ? e.message : e}`;
  }
}

// A session id for the server's face tracks: random, so that no other page can guess it and feed
// frames into this one's tracks (crypto.getRandomValues works on plain http too).
function newSessionId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// With the model in this browser the server's smoothing would average its own probabilities,
// not those shown: the page averages them itself per track id, with the server's formula
// (apps/inference/face_tracker.h), p = s p_before + (1 - s) p_now; s = 0 only remembers p_now.
function smoothByTrack(memory, faces, s, now) {
  for (const [id, m] of memory) if (now - m.seen > LIVE_TRACK_MEMORY_MS) memory.delete(id);
  return faces.map((face) => {
    if (!Number.isInteger(face.track)) return face;
    const before = memory.get(face.track);
    const names = Object.keys(face.emotions);
    const emotions = before ? Object.fromEntries(names.map((n) => [n, s * before.emotions[n] + (1 - s) * face.emotions[n]]))
                            : face.emotions;
    memory.set(face.track, { emotions, seen: now });
    const best = names.reduce((a, b) => (emotions[b] > emotions[a] ? b : a));
    return { ...face, emotions, emotion: best, confidence: emotions[best] };
  });
}

async function startLive() {
  clearError();
  const video = $("video"), overlay = $("overlay"), status = $("live-status");
  let stream;
  try {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw null;
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
  } catch (e) {
    showError(cameraErrorMessage(e));
    return;
  }
  video.srcObject = stream;
  await video.play();
  const live = { stream, frames: 0, totalMs: 0, timer: 0, abort: new AbortController(), stopped: false,
                 session: newSessionId(), smoothed: new Map() };
  state.live = live;
  Object.assign(overlay.dataset, { faces: "0", labels: "", tracks: "", answers: "0" });  // a new session
  $("video-wrap").classList.add("running");
  const button = $("live-toggle");
  button.textContent = "Stop camera";
  button.classList.add("stop");
  status.textContent = "Waiting for the first answer…";

  const capture = document.createElement("canvas");
  const loop = async () => {
    if (live.stopped) return;
    const started = performance.now();
    if (video.videoWidth > 0) {
      const scale = Math.min(1, LIVE_CAPTURE_WIDTH / video.videoWidth);
      capture.width = Math.round(video.videoWidth * scale);
      capture.height = Math.round(video.videoHeight * scale);
      capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
      try {
        const blob = await new Promise((resolve) => capture.toBlob(resolve, "image/jpeg", 0.85));
        const smooth = $("live-smooth").checked ? LIVE_SMOOTHING : 0;
        const inBrowser = $("live-in-browser").checked;
        const result = await predict(blob, "image/jpeg", true, live.abort.signal,
                                     { session: live.session, smooth: inBrowser ? 0 : smooth });
        if (live.stopped) return;
        // The option: the server's boxes and track ids, each face read here from the captured
        // pixels (the server reads them from the JPEG, so the two differ by its compression).
        let run = null;
        if (inBrowser) {
          const pixels = capture.getContext("2d").getImageData(0, 0, capture.width, capture.height);
          run = await classifyInBrowser(grayFromRgba(pixels, false), result.faces, true);
          if (live.stopped) return;
        }
        // In track order, so that each face's card keeps its place from frame to frame.
        const faces = (run ? smoothByTrack(live.smoothed, run.faces, smooth, performance.now()) : [...result.faces])
          .sort((a, b) => (a.track ?? 0) - (b.track ?? 0));
        live.frames += 1;
        live.totalMs += performance.now() - started;
        overlay.width = video.videoWidth;
        overlay.height = video.videoHeight;
        const ctx = overlay.getContext("2d");
        ctx.clearRect(0, 0, overlay.width, overlay.height);
        drawFaces(ctx, faces, video.videoWidth / result.width);
        overlay.dataset.faces = String(faces.length);
        overlay.dataset.labels = faces.map(labelOf).join("|");
        overlay.dataset.tracks = faces.map((f) => f.track).join("|");
        overlay.dataset.answers = String(live.frames);
        renderCards($("live-faces"), faces, "No face in view.");
        status.textContent = `${live.frames} frames · ${(live.totalMs / live.frames).toFixed(0)} ms per frame (capture to answer) · ${facesSummary(result)}` +
                             (run ? ` · ${browserSummary(run)}` : "");
        clearError();
      } catch (e) {
        if (live.stopped || e.name === "AbortError") return;
        showError(e.message);
      }
    }
    // At most `rate` requests a second; the next one starts only after this answer arrived.
    const interval = 1000 / Number($("live-rate").value);
    live.timer = setTimeout(loop, Math.max(0, interval - (performance.now() - started)));
  };
  loop();
}

function stopLive() {
  const live = state.live;
  if (!live) return;
  live.stopped = true;
  clearTimeout(live.timer);
  live.abort.abort();
  live.stream.getTracks().forEach((t) => t.stop());
  state.live = null;
  $("video").srcObject = null;
  const overlay = $("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  $("video-wrap").classList.remove("running");
  const button = $("live-toggle");
  button.textContent = "Start camera";
  button.classList.remove("stop");
  $("live-status").textContent = live.frames ? `Stopped after ${live.frames} frames.` : "";
}

function setupLive() {
  $("live-toggle").addEventListener("click", () => (state.live ? stopLive() : startLive()));
}

// ---- video -------------------------------------------------------------------------------------
// The chart: per emotion, its mean probability over the faces of each analysed frame.
function drawTimeline(canvas, frames, classes, duration) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 44, bottom = 26, top = 10, right = 110;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "12px system-ui, sans-serif";
  ctx.strokeStyle = "#c8ccd4";
  ctx.strokeRect(left, top, w - left - right, h - top - bottom);
  ctx.fillStyle = "#555";
  ctx.fillText("1", left - 14, top + 6);
  ctx.fillText("0", left - 14, h - bottom);
  ctx.fillText(`${duration.toFixed(1)} s`, w - right - 30, h - 8);
  const x = (t) => left + (w - left - right) * (duration > 0 ? t / duration : 0);
  const y = (p) => top + (h - top - bottom) * (1 - p);
  classes.forEach((name, c) => {
    const points = frames.filter((f) => f.faces.length > 0)
      .map((f) => [f.time, f.faces.reduce((s, face) => s + face.emotions[name], 0) / f.faces.length]);
    ctx.strokeStyle = colorOf(name, c);
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach(([t, p], i) => (i ? ctx.lineTo(x(t), y(p)) : ctx.moveTo(x(t), y(p))));
    ctx.stroke();
    ctx.fillStyle = colorOf(name, c);
    ctx.fillText(name, w - right + 10, top + 14 + 16 * c);
  });
}

// Boxes of the analysed frame nearest before the video's current time, over the video.
function drawClipFaces() {
  const clip = state.clip, video = $("clip"), overlay = $("clip-overlay");
  if (!clip || !video.videoWidth) return;
  overlay.width = video.clientWidth;
  overlay.height = video.clientHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  let frame = null;
  for (const f of clip.frames) if (f.time <= video.currentTime + 1e-3) frame = f;
  if (frame) drawFaces(ctx, frame.faces.map((face) => ({ ...face, emotion: face.emotion })), overlay.width / clip.video.width);
}

async function analyzeClip(file) {
  clearError();
  $("clip-busy").hidden = false;
  $("clip-status").textContent = `Reading ${file.name}…`;
  try {
    const response = await fetch("/api/video", {
      method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    let data = null;
    try { data = await response.json(); } catch (_) { /* reported below */ }
    if (!response.ok) {
      const why = data && data.error ? data.error : `HTTP ${response.status} ${response.statusText}`;
      throw new Error(`The server could not read this video (${response.status}): ${why}`);
    }
    state.clip = data;
    const video = $("clip");
    video.src = URL.createObjectURL(file);
    const classes = state.classes.length ? state.classes : Object.keys(data.frames.find((f) => f.faces.length)?.faces[0].emotions || {});
    const chart = $("clip-chart");
    chart.hidden = false;
    drawTimeline(chart, data.frames, classes, data.video.duration || (data.frames.at(-1)?.time || 0));
    const tracks = $("clip-tracks");
    tracks.replaceChildren();
    for (const t of data.tracks) {
      const card = document.createElement("p");
      card.className = "clip-track";
      card.textContent = `Face #${t.track}: ${t.first.toFixed(1)}–${t.last.toFixed(1)} s, mostly ${t.dominant} (${percent(t.shares[t.dominant])})`;
      tracks.append(card);
    }
    $("clip-status").textContent = `${data.frames.length} frames read, ${data.tracks.length} face${data.tracks.length === 1 ? "" : "s"} followed (${Math.round(data.elapsed_ms)} ms)`;
  } catch (e) {
    showError(e.message);
    $("clip-status").textContent = "";
  } finally {
    $("clip-busy").hidden = true;
  }
}

function setupClip() {
  const input = $("clip-file");
  input.addEventListener("change", () => { if (input.files.length) analyzeClip(input.files[0]); });
  const video = $("clip");
  for (const type of ["timeupdate", "seeked", "loadeddata", "play"]) video.addEventListener(type, drawClipFaces);
  window.addEventListener("resize", drawClipFaces);
}

// ---- tabs, health ----------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of ["photo", "live", "clip"]) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`panel-${tab}`).hidden = !selected;
  }
  if (name !== "live") stopLive();
  clearError();
}

async function checkHealth() {
  const health = $("health");
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const h = await response.json();
    state.classes = h.classes;
    health.dataset.state = "ok";
    health.textContent = `${h.model} · ${h.classes.length} emotions · up ${Math.round(h.uptime_s)} s`;
  } catch (e) {
    health.dataset.state = "down";
    health.textContent = "server unreachable";
  }
}

function setup() {
  $("tab-photo").addEventListener("click", () => selectTab("photo"));
  $("tab-live").addEventListener("click", () => selectTab("live"));
  $("tab-clip").addEventListener("click", () => selectTab("clip"));
  $("error-close").addEventListener("click", clearError);
  setupPhoto();
  setupLive();
  setupClip();
  checkHealth();
  probeBrowserModel();
  setInterval(checkHealth, 30000);
}

document.addEventListener("DOMContentLoaded", setup);
