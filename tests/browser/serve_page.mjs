// Real-browser test of fer_serve's page (registered with CTest as browser_serve).
//
// Starts the built fer_serve ($FER_BUILD_DIR/fer_serve) on a free port, then drives Debian's
// chromium, headless, with playwright-core (tests/browser/node_modules: `npm ci --prefix tests/browser`):
//   1. photo mode: uploads face photos through the page's file input (a photo from Debian's
//      opencv-doc with face detection, a FER2013 val crop with "Find faces" unticked), waits for
//      the labels and checks they equal the API's answer for the same file; screenshot;
//   1b. the same photos (and PNG copies) with "Run the model in this browser": the probabilities
//      computed by onnxruntime-web in the page equal the API's within 1e-3; the page's latency per
//      face is recorded in <screenshots>/in_browser.json;
//   2. error display: a text file posing as a JPEG shows the server's 400 message in the banner;
//   3. live mode: a second browser whose fake camera plays a .y4m made here from the face photo,
//      swaying a few pixels left and right (--use-file-for-fake-video-capture); checks that boxes
//      and labels appear over the video, that requests stay one at a time, that every face has a
//      track id (the page's random session) that stays its own over the answers, with and
//      without "Smooth over time", and that a new camera start is a new session; screenshot;
//   4. video mode: a .y4m uploaded through the page; the chart and the followed faces appear.
// Screenshots go to $FER_SCREENSHOT_DIR, else $FER_BUILD_DIR/browser_screenshots, else the system
// temp dir; never into the source tree. Exits 77 (CTest: skipped), saying why, when node_modules,
// chromium or the fer_serve binary is missing.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SKIP = 77;
const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.FER_CHROMIUM || "/usr/bin/chromium";
const OPENCV_PHOTO = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg";
const OPENCV_PORTRAIT = "/usr/share/doc/opencv-doc/opencv4/html/faceDetection.png";  // one clear face
const LABEL = /^(\d+ {2})?[a-z]+ \d{1,3}%$/;

function skip(why) {
  console.log(`SKIPPED: ${why}`);
  process.exit(SKIP);
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  console.log(`ok: ${message}`);
}

// ---- preconditions ---------------------------------------------------------------------------
const buildDir = process.env.FER_BUILD_DIR || path.resolve(here, "../../build");
const serveBinary = path.join(buildDir, "fer_serve");
if (!fs.existsSync(serveBinary)) skip(`${serveBinary} is not built`);
if (!fs.existsSync(CHROMIUM)) skip(`${CHROMIUM} is absent (Debian package chromium)`);
let chromium;
try {
  ({ chromium } = await import(path.join(here, "node_modules/playwright-core/index.mjs")));
} catch (e) {
  skip(`playwright-core is not installed (npm ci --prefix tests/browser): ${e.message}`);
}

const shotDir = process.env.FER_SCREENSHOT_DIR ||
  (process.env.FER_BUILD_DIR ? path.join(process.env.FER_BUILD_DIR, "browser_screenshots")
                             : path.join(os.tmpdir(), "fer_serve_browser"));
fs.mkdirSync(shotDir, { recursive: true });
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "fer_serve_browser_"));

// The photos to upload: [file, detect]. The opencv-doc photo exercises detection; the FER2013
// crop (whole image = one face) does not depend on it.
function photos() {
  const list = [];
  if (fs.existsSync(OPENCV_PHOTO)) list.push({ file: OPENCV_PHOTO, detect: true });
  else console.log(`note: ${OPENCV_PHOTO} is absent (opencv-doc): no detection photo`);
  const data = process.env.FER_DATA || path.resolve(here, "../../../shared/fer2013");
  const happy = path.join(data, "val", "happy");
  if (fs.existsSync(happy)) {
    const files = fs.readdirSync(happy).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
    if (files.length) list.push({ file: path.join(happy, files[0]), detect: false });
  } else {
    console.log(`note: ${happy} is absent: no FER2013 crop`);
  }
  return list;
}

// ---- fer_serve -------------------------------------------------------------------------------
function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(serveBinary, ["--port", "0", "--quiet", "--threads", "4"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`fer_serve did not start: ${out}`)), 120000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/listening on (http:\/\/[\d.]+:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.on("exit", (code) => reject(new Error(`fer_serve exited (${code}): ${out}`)));
  });
}

// The API's answer for a file, sent as the page sends it: multipart/form-data, field "file".
async function apiPredict(url, file, detect) {
  const form = new FormData();
  form.append("file", new Blob([fs.readFileSync(file)]), path.basename(file));
  const response = await fetch(`${url}/api/predict${detect ? "" : "?detect=0"}`, { method: "POST", body: form });
  return { status: response.status, body: await response.json() };
}

const labelOf = (f) => `${f.emotion} ${Math.round(f.confidence * 100)}%`;

// ---- 1 + 2: photo mode and error display -----------------------------------------------------
async function photoMode(url) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const consoleErrors = [];
    page.on("console", (msg) => msg.type() === "error" && consoleErrors.push(msg.text()));
    page.on("pageerror", (err) => consoleErrors.push(err.message));
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("health").dataset.state === "ok");
    check((await page.textContent("#health")).includes("fer_vgg_small"), "the header shows the model from /healthz");

    let uploaded = 0;
    for (const { file, detect } of photos()) {
      const api = await apiPredict(url, file, detect);
      check(api.status === 200, `API answers 200 for ${path.basename(file)}`);
      const expected = api.body.faces.map(labelOf);
      if (detect && expected.length === 0) {
        console.log(`note: the API finds no face in ${path.basename(file)}; checking the page says so`);
      }
      await page.setChecked("#detect", detect);
      const before = await page.textContent("#photo-status");
      await page.setInputFiles("#file", file);
      await page.waitForFunction((prev) => {
        const s = document.getElementById("photo-status").textContent;
        return s !== prev && s.includes("ms on the server");
      }, before, { timeout: 120000 });
      const shown = await page.$$eval("#photo-faces .face .label", (els) => els.map((e) => e.textContent));
      console.log(`${path.basename(file)}: page shows [${shown.join(", ")}], API says [${expected.join(", ")}]`);
      check(JSON.stringify(shown) === JSON.stringify(expected), `labels on the page equal the API's answer for ${path.basename(file)}`);
      if (expected.length === 0) {
        check(await page.isVisible("#photo-faces .empty"), "the page says no face was found");
      }
      const canvasFaces = await page.getAttribute("#photo-canvas", "data-faces");
      check(Number(canvasFaces) === expected.length, "the canvas drew one box per face");
      const bars = await page.$$eval("#photo-faces .face", (cards) => cards.map((c) => c.querySelectorAll(".bars li").length));
      check(bars.every((n) => n === 7), "every face card has 7 probability bars");
      const shot = path.join(shotDir, `photo_${uploaded}_${path.basename(file, path.extname(file))}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`screenshot: ${shot}`);
      uploaded += 1;
    }
    if (uploaded === 0) console.log("note: no face photo available (neither opencv-doc nor FER2013): photo upload not checked");

    // Drag and drop: a File dropped on the picture area is analysed like a chosen one.
    for (const { file, detect } of photos().slice(0, 1)) {
      const api = await apiPredict(url, file, detect);
      await page.setChecked("#detect", detect);
      await page.waitForFunction(() => document.getElementById("photo-busy").hidden);
      const before = await page.textContent("#photo-status");
      const dataTransfer = await page.evaluateHandle(({ b64, name }) => {
        const dt = new DataTransfer();
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
        return dt;
      }, { b64: fs.readFileSync(file).toString("base64"), name: `dropped_${path.basename(file)}` });
      await page.dispatchEvent("#drop", "drop", { dataTransfer });
      await page.waitForFunction((prev) => {
        const s = document.getElementById("photo-status").textContent;
        return s !== prev && s.startsWith("dropped_") && s.includes("ms on the server");
      }, before, { timeout: 120000 });
      const shown = await page.$$eval("#photo-faces .face .label", (els) => els.map((e) => e.textContent));
      check(JSON.stringify(shown) === JSON.stringify(api.body.faces.map(labelOf)),
            `a dropped ${path.basename(file)} shows the API's labels [${shown.join(", ")}]`);
    }

    await inBrowserMode(page, url);

    // A 4xx JSON error is shown with its message.
    const fake = path.join(workDir, "not_a_photo.jpg");
    fs.writeFileSync(fake, "these are not the pixels you are looking for");
    const api = await apiPredict(url, fake, true);
    check(api.status === 400, "API answers 400 for a text file");
    await page.setChecked("#detect", true);
    await page.waitForFunction(() => document.getElementById("photo-busy").hidden);
    await page.setInputFiles("#file", fake);
    await page.waitForSelector("#error:not([hidden])", { timeout: 30000 });
    const banner = await page.textContent("#error-text");
    console.log(`error banner: ${banner}`);
    check(banner.includes(api.body.error) && banner.includes("400") && banner.includes("not_a_photo.jpg"),
          "the error banner shows the server's message (naming the file) and status");
    check(await page.isHidden("#photo-canvas"), "no stale picture is left next to the error");
    const shot = path.join(shotDir, "photo_error.png");
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);
    check(consoleErrors.filter((e) => !e.includes("400")).length === 0,
          `no script errors in the console (${consoleErrors.join(" | ")})`);
  } finally {
    await browser.close();
  }
}

// ---- 1b: the model run in the browser (onnxruntime-web) ---------------------------------------
// With "Run the model in this browser" ticked, each photo's faces (the server's boxes) are read by
// the model in WebAssembly: the page crops, resizes and equalises as the server does, so for a
// PNG (lossless: the browser and stb_image decode the same pixels) the probabilities on the cards
// must equal the API's within 1e-3. A JPEG's pixels are not the same: Chromium's libjpeg-turbo and
// the server's stb_image round their inverse DCTs differently (a few pixels in a hundred differ
// by 1, more near saturated colours, where the browser's RGB clamps), so JPEGs get 1e-2. The
// page's measured milliseconds per face (performance.now() around session.run) are recorded in
// <screenshots>/in_browser.json.
const PNG_TOLERANCE = 1e-3, JPEG_TOLERANCE = 1e-2;

// A PNG of `file` made by the browser (lossless: the server and the page decode the same pixels).
async function pngCopy(page, file) {
  const b64 = await page.evaluate(async (dataUrl) => {
    const img = new Image();
    img.src = dataUrl;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = img.width;
    canvas.height = img.height;
    canvas.getContext("2d").drawImage(img, 0, 0);
    return canvas.toDataURL("image/png").split(",")[1];
  }, `data:image/jpeg;base64,${fs.readFileSync(file).toString("base64")}`);
  const out = path.join(workDir, `${path.basename(file, path.extname(file))}.png`);
  fs.writeFileSync(out, Buffer.from(b64, "base64"));
  return out;
}

async function inBrowserMode(page, url) {
  if (await page.isDisabled("#in-browser")) {
    console.log(`note: the in-browser option is off (${await page.getAttribute("#in-browser-label", "title")}): not checked`);
    return;
  }
  const list = photos();
  for (const { file, detect } of photos()) list.push({ file: await pngCopy(page, file), detect });
  const records = [];
  for (const { file, detect } of list) {
    const api = await apiPredict(url, file, detect);
    check(api.status === 200, `API answers 200 for ${path.basename(file)}`);
    await page.setChecked("#detect", detect);
    await page.setChecked("#in-browser", true);
    await page.waitForFunction(() => document.getElementById("photo-busy").hidden, null, { timeout: 120000 });
    await page.evaluate(() => { document.getElementById("photo-status").textContent = ""; });
    await page.setInputFiles("#file", file);
    await page.waitForFunction(() => document.getElementById("photo-status").textContent.includes("ms on the server") ||
                                     !document.getElementById("error").hidden, null, { timeout: 120000 });
    check(!(await page.isVisible("#error")), `no error running the model in the browser (${await page.textContent("#error-text")})`);
    const browserStatus = await page.textContent("#browser-status");
    console.log(`${path.basename(file)}: ${browserStatus}`);
    const shown = await page.$$eval("#photo-faces .face", (cards) => cards.map((c) => JSON.parse(c.dataset.probabilities)));
    const expected = api.body.faces.map((f) => f.emotions);
    check(shown.length === expected.length, `the browser reads the server's ${expected.length} face(s) of ${path.basename(file)}`);
    let largest = 0;
    shown.forEach((p, i) => { for (const name of Object.keys(expected[i])) largest = Math.max(largest, Math.abs(p[name] - expected[i][name])); });
    const tolerance = file.endsWith(".png") ? PNG_TOLERANCE : JPEG_TOLERANCE;
    check(largest <= tolerance,
          `in-browser probabilities of ${path.basename(file)} equal the server's (largest difference ${largest.toExponential(2)} <= ${tolerance})`);
    const msPerFace = Number(await page.getAttribute("#browser-status", "data-ms-per-face"));
    if (expected.length) check(msPerFace > 0, `the page measured ${msPerFace.toFixed(2)} ms per face`);
    records.push({ file: path.basename(file), detect, faces: expected.length, ms_per_face: msPerFace,
                   largest_difference: largest });
    await page.screenshot({ path: path.join(shotDir, `in_browser_${path.basename(file).replace(/\W+/g, "_")}.png`), fullPage: true });
  }
  // Ten more runs of the first photo with a face, for a steadier latency.
  const withFace = list.find((_, i) => records[i].faces > 0);
  if (withFace) {
    const runs = [];
    for (let k = 0; k < 10; k++) {
      await page.evaluate(() => { document.getElementById("photo-status").textContent = ""; });
      await page.setInputFiles("#file", withFace.file);
      await page.waitForFunction(() => document.getElementById("photo-status").textContent.includes("ms on the server"),
                                 null, { timeout: 120000 });
      runs.push(Number(await page.getAttribute("#browser-status", "data-ms-per-face")));
    }
    runs.sort((a, b) => a - b);
    const median = runs[runs.length >> 1];
    console.log(`in-browser latency per face, ${path.basename(withFace.file)}, 10 uploads: median ${median.toFixed(2)} ms (min ${runs[0].toFixed(2)}, max ${runs.at(-1).toFixed(2)})`);
    records.push({ file: path.basename(withFace.file), repeated: runs.length, median_ms_per_face: median,
                   min_ms_per_face: runs[0], max_ms_per_face: runs.at(-1) });
  }
  const browser = page.context().browser();
  const summary = { date: new Date().toISOString(), browser: `chromium ${browser.version()}`, cpu: os.cpus()[0]?.model,
                    records };
  fs.writeFileSync(path.join(shotDir, "in_browser.json"), JSON.stringify(summary, null, 2));
  console.log(`in-browser results: ${path.join(shotDir, "in_browser.json")}`);
  await page.setChecked("#in-browser", false);
  await page.waitForFunction(() => document.getElementById("photo-busy").hidden, null, { timeout: 120000 });
}

// ---- 3: live mode ----------------------------------------------------------------------------
// A .y4m clip (YUV4MPEG2, 4:2:0): `frames` frames of the photo letterboxed into w x h, frame i
// moved right by shifts[i % shifts.length] pixels; or, given `crop` ([x, y, w, h] of the photo),
// that region twice side by side, the right copy mirrored (two faces, swaying towards each other
// and apart). The browser decodes the photo and converts it to I420 (BT.601 full range, as JPEG
// uses).
async function makeY4m(file, w, h, frames, shifts = [0], crop = null) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  try {
    const page = await browser.newPage();
    const dataUrl = `data:image/${file.endsWith(".png") ? "png" : "jpeg"};base64,${fs.readFileSync(file).toString("base64")}`;
    const clip = [];
    for (let i = 0; i < frames; i++) clip.push(await page.evaluate(async ({ dataUrl, w, h, dx, crop }) => {
      const img = new Image();
      img.src = dataUrl;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#404040";
      ctx.fillRect(0, 0, w, h);
      if (crop) {
        const side = Math.min(w / 2, h) - 20;
        ctx.drawImage(img, ...crop, 10 + dx, (h - side) / 2, side, side);
        ctx.translate(w, 0);
        ctx.scale(-1, 1);
        ctx.drawImage(img, ...crop, 10 + dx, (h - side) / 2, side, side);
        ctx.setTransform(1, 0, 0, 1, 0, 0);
      } else {
        const s = Math.min(w / img.width, h / img.height);
        const dw = img.width * s, dh = img.height * s;
        ctx.drawImage(img, (w - dw) / 2 + dx, (h - dh) / 2, dw, dh);
      }
      const rgba = ctx.getImageData(0, 0, w, h).data;
      const y = new Uint8Array(w * h), u = new Uint8Array((w / 2) * (h / 2)), v = new Uint8Array((w / 2) * (h / 2));
      const clamp = (x) => Math.max(0, Math.min(255, Math.round(x)));
      for (let i = 0; i < w * h; i++) {
        y[i] = clamp(0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]);
      }
      for (let cy = 0; cy < h / 2; cy++) {
        for (let cx = 0; cx < w / 2; cx++) {
          let r = 0, g = 0, b = 0;
          for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
            const i = 4 * ((2 * cy + dy) * w + 2 * cx + dx);
            r += rgba[i] / 4; g += rgba[i + 1] / 4; b += rgba[i + 2] / 4;
          }
          u[cy * (w / 2) + cx] = clamp(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
          v[cy * (w / 2) + cx] = clamp(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
        }
      }
      const b64 = (a) => { let s = ""; for (let i = 0; i < a.length; i += 8192) s += String.fromCharCode(...a.subarray(i, i + 8192)); return btoa(s); };
      return { y: b64(y), u: b64(u), v: b64(v) };
    }, { dataUrl, w, h, dx: shifts[i % shifts.length], crop }));
    const out = path.join(workDir, `face_${frames}.y4m`);
    fs.writeFileSync(out, Buffer.concat([
      Buffer.from(`YUV4MPEG2 W${w} H${h} F10:1 Ip A1:1 C420jpeg\n`),
      ...clip.map((planes) => Buffer.concat([Buffer.from("FRAME\n"), Buffer.from(planes.y, "base64"),
                                             Buffer.from(planes.u, "base64"), Buffer.from(planes.v, "base64")]))]));
    return out;
  } finally {
    await browser.close();
  }
}

// The faces of the next `n` live answers: [{ answer, tracks: [ids], which: ["Face #1", ...] }].
async function liveAnswers(page, n) {
  const out = [];
  for (let k = 0; k < n; k++) {
    const previous = Number(await page.getAttribute("#overlay", "data-answers") || 0);
    await page.waitForFunction((prev) => Number(document.getElementById("overlay").dataset.answers || 0) > prev,
                               previous, { timeout: 60000 });
    out.push(await page.evaluate(() => {
      const overlay = document.getElementById("overlay");
      return {
        answer: Number(overlay.dataset.answers),
        tracks: overlay.dataset.tracks ? overlay.dataset.tracks.split("|") : [],
        which: Array.from(document.querySelectorAll("#live-faces .face .which"), (e) => e.textContent),
      };
    }));
  }
  return out;
}

// Track ids are stable when no face gets a second number: as many distinct ids over the answers
// as faces in the fullest answer (a face the detector misses in one frame may be absent, but
// it must come back with its own number, and a face must never take another's).
function checkStableTracks(answers, when) {
  const ids = new Set(answers.flatMap((a) => a.tracks));
  const most = Math.max(...answers.map((a) => a.tracks.length));
  console.log(`live track ids ${when}: ${answers.map((a) => `[${a.tracks.join(",")}]`).join(" ")}`);
  check(answers.every((a) => a.tracks.length > 0 && a.tracks.every((t) => /^\d+$/.test(t))),
        `every face over the video has a track id ${when}`);
  check(answers.every((a) => a.tracks.length === new Set(a.tracks).size), `no two faces share a track id ${when}`);
  check(ids.size === most, `track ids stay stable over ${answers.length} answers ${when} (${ids.size} ids for at most ${most} faces)`);
  check(answers.every((a) => JSON.stringify(a.which) === JSON.stringify(a.tracks.map((t) => `Face #${t}`))),
        `each face card is titled with its track id ${when}`);
  check(answers.every((a) => a.tracks.every((t, i) => i === 0 || Number(t) > Number(a.tracks[i - 1]))),
        `faces are listed in track order (cards keep their places) ${when}`);
  return ids;
}

// Swaying a few pixels: faces move between frames, and the tracks must follow them.
const LIVE_SHIFTS = [0, 2, 4, 6, 4, 2];

async function liveMode(url, photo) {
  // Two faces where opencv-doc's portrait is there: its face with twice its side around it, twice.
  // Else the photo, letterboxed (messi5.jpg: one face at this size).
  let crop = null;
  if (fs.existsSync(OPENCV_PORTRAIT)) {
    const api = (await apiPredict(url, OPENCV_PORTRAIT, true)).body;
    if (api.faces.length === 1) {
      const [fx, fy, fw, fh] = api.faces[0].box;
      const side = Math.min(2 * Math.max(fw, fh), api.width, api.height);
      const fit = (c, size) => Math.min(Math.max(0, c - side / 2), size - side);
      crop = [fit(fx + fw / 2, api.width), fit(fy + fh / 2, api.height), side, side];
      photo = OPENCV_PORTRAIT;
    }
  }
  const y4m = await makeY4m(photo, 640, 480, LIVE_SHIFTS.length, LIVE_SHIFTS, crop);
  console.log(`fake camera clip: ${y4m} (${fs.statSync(y4m).size} bytes)`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
           `--use-file-for-fake-video-capture=${y4m}`],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(["camera"], { origin: url });
    const page = await context.newPage();
    // Count requests in flight to check the page never has more than one.
    let inFlight = 0, maxInFlight = 0, answered = 0;
    const sent = [];  // the URLs of /api/predict requests: their session and smooth parameters
    page.on("request", (r) => {
      if (!r.url().includes("/api/predict")) return;
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      sent.push(new URL(r.url()).searchParams);
    });
    const answers = [];  // every answer's faces, as the server sent them
    page.on("response", async (r) => {
      if (r.url().includes("/api/predict")) answers.push((await r.json()).faces);
    });
    const done = (r) => { if (r.url().includes("/api/predict")) { inFlight -= 1; answered += 1; } };
    page.on("requestfinished", done);
    page.on("requestfailed", done);
    await page.goto(url);
    await page.click("#tab-live");
    await page.click("#live-toggle");
    await page.waitForFunction(() => Number(document.getElementById("overlay").dataset.faces || 0) > 0,
                               null, { timeout: 120000 });
    await page.waitForTimeout(1500);  // a few more frames
    const labels = (await page.getAttribute("#overlay", "data-labels")).split("|");
    console.log(`live labels over the video: [${labels.join(", ")}] after ${answered} answers`);
    check(labels.length >= 1 && labels.every((l) => LABEL.test(l)), "labels like 'happy 93%' appear over the video");
    const cards = await page.$$eval("#live-faces .face .label", (els) => els.map((e) => e.textContent));
    check(cards.length >= 1 && cards.every((l) => LABEL.test(l)), "live face cards are shown");

    // Tracks: one session per camera start, smoothing as ticked, the same ids answer after answer.
    check(await page.isChecked("#live-smooth"), "'Smooth over time' is ticked by default");
    const smoothed = await liveAnswers(page, 6);
    const session = sent[0].get("session");
    check(/^[0-9a-f]{32}$/.test(session || "") && sent.every((q) => q.get("session") === session),
          `every frame is sent with the page's session id (${session})`);
    check(sent.every((q) => q.get("smooth") === "0.5"), "frames ask for smoothing (smooth=0.5)");
    const ids = checkStableTracks(smoothed, "with smoothing");
    if (crop) check(Math.max(...smoothed.map((a) => a.tracks.length)) === 2, "both faces of the clip are followed");
    const drawn = (await page.getAttribute("#overlay", "data-tracks")).split("|");
    check(drawn.every((t) => ids.has(t)), "the overlay draws the faces' track ids");
    const shot = path.join(shotDir, "live.png");
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);

    await page.setChecked("#live-smooth", false);
    await liveAnswers(page, 1);  // the request in flight when it was unticked
    const before = sent.length;
    const raw = await liveAnswers(page, 4);
    check(sent.slice(before).every((q) => q.get("smooth") === "0" && q.get("session") === session),
          "unticked: the same session, smooth=0");
    const all = checkStableTracks([...smoothed, ...raw], "before and after smoothing was turned off");
    check(all.size === ids.size, "turning smoothing off keeps the faces' numbers");

    // The model in this browser: the server only tracks (smooth=0), the page smooths what it shows.
    if (!(await page.isDisabled("#live-in-browser"))) {
      await page.setChecked("#live-smooth", true);
      await page.setChecked("#live-in-browser", true);
      await liveAnswers(page, 1);
      const from = sent.length;
      const inBrowser = await liveAnswers(page, 3);
      check(sent.slice(from).every((q) => q.get("smooth") === "0" && q.get("session") === session),
            "with the model in this browser, the server is asked for tracks only (smooth=0)");
      const both = checkStableTracks([...smoothed, ...inBrowser], "with the model in this browser");
      check(both.size === ids.size, "the model in this browser keeps the server's track ids");
      await page.setChecked("#live-in-browser", false);
      // The page's smoothing is the server's formula, p = s p_before + (1 - s) p_now, per track.
      const smoothedHere = await page.evaluate(() => {
        const memory = new Map(), face = (track, angry) => ({ track, emotions: { angry, happy: 1 - angry } });
        smoothByTrack(memory, [face(1, 0.8), face(2, 0.3)], 0.5, 0);
        const next = smoothByTrack(memory, [face(2, 0.9), face(1, 0.25)], 0.5, 100);
        const forgotten = smoothByTrack(memory, [face(1, 0.2)], 0.5, 100 + 60000);
        return { next, forgotten };
      });
      const [two, one] = smoothedHere.next;
      check(Math.abs(one.emotions.angry - 0.525) < 1e-9 && Math.abs(two.emotions.angry - 0.6) < 1e-9 &&
            one.emotion === "angry" && two.emotion === "angry" && Math.abs(two.confidence - 0.6) < 1e-9,
            "the page's smoothing averages each track's probabilities with its own earlier ones");
      check(Math.abs(smoothedHere.forgotten[0].emotions.angry - 0.2) < 1e-9, "a track unseen for long is forgotten");
    } else {
      console.log("note: the in-browser option is off: live tracks with it not checked");
    }
    // And each id stays on its face: its box's centre stays within half a side of its first one
    // (the faces sway by 6 px and are 320 px apart).
    console.log(`every answer of the session: ${answers.map((a) => `[${a.map((f) => f.track).join(",")}]`).join(" ")}`);
    const first = new Map();
    let strays = 0;
    for (const face of answers.flat()) {
      const [x, y, w, h] = face.box, centre = [x + w / 2, y + h / 2];
      if (!first.has(face.track)) first.set(face.track, centre);
      const [cx, cy] = first.get(face.track);
      if (Math.hypot(centre[0] - cx, centre[1] - cy) > w / 2) strays += 1;
    }
    check(answers.length >= 10 && strays === 0, `each track id stays on its own face over ${answers.length} answers`);

    check(maxInFlight === 1, `at most one request in flight (max seen ${maxInFlight})`);
    check(!(await page.isVisible("#error")), "no error banner in live mode");
    await page.click("#live-toggle");
    check((await page.textContent("#live-toggle")) === "Start camera", "the camera stops");
    const firstOfNext = sent.length;
    await page.click("#live-toggle");
    await page.waitForFunction(() => document.getElementById("live-toggle").textContent === "Stop camera");
    await liveAnswers(page, 1);
    const next = sent[firstOfNext].get("session");
    check(next && next !== session, `a new camera start is a new session (${next})`);
    await page.click("#live-toggle");
  } finally {
    await browser.close();
  }
}

// ---- 4: video mode ---------------------------------------------------------------------------
// The .y4m clip goes to POST /api/video through the page: the status names the frames read and
// the faces followed, the chart appears, and a line per followed face is listed.
async function videoMode(url, photo) {
  const clip = await makeY4m(photo, 640, 480, 12);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const consoleErrors = [];
    page.on("pageerror", (err) => consoleErrors.push(err.message));
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("health").dataset.state === "ok");
    await page.click("#tab-clip");
    await page.setInputFiles("#clip-file", clip);
    await page.waitForFunction(() => /frames read/.test(document.getElementById("clip-status").textContent) ||
                                     !document.getElementById("error").hidden, null, { timeout: 120000 });
    const status = await page.textContent("#clip-status");
    console.log(`video mode: ${status}`);
    check(/\d+ frames read, [1-9]\d* faces? followed/.test(status), "the page reads the video and follows a face");
    check(await page.isVisible("#clip-chart"), "the emotion chart appears under the video");
    const tracks = await page.$$eval(".clip-track", (els) => els.map((e) => e.textContent));
    check(tracks.length >= 1 && tracks.every((t) => /^Face #\d+: .* s, mostly \w+ \(\d+%\)$/.test(t)),
          "each followed face is listed with its dominant emotion");
    await page.screenshot({ path: path.join(shotDir, "video.png"), fullPage: true });
    check(consoleErrors.length === 0, `no page errors in video mode (${consoleErrors.join("; ")})`);
  } finally {
    await browser.close();
  }
}

// ---- main ------------------------------------------------------------------------------------
const { child, url } = await startServer();
console.log(`fer_serve at ${url}; screenshots in ${shotDir}`);
let failed = false;
try {
  await photoMode(url);
  // The live clip: the first photo in which the API finds a face with detection on.
  let live = null;
  for (const { file } of photos()) {
    const api = await apiPredict(url, file, true);
    if (api.status === 200 && api.body.faces.length > 0) { live = file; break; }
  }
  if (live) {
    await liveMode(url, live);
    await videoMode(url, live);
  } else {
    console.log("note: no photo with a detectable face: live and video modes not checked");
  }
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack || e}`);
} finally {
  child.removeAllListeners("exit");
  child.kill("SIGTERM");
  fs.rmSync(workDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
