// The rater's page: consent, then one trial at a time from the JSON API (srlab.mos.app).
"use strict";

const $ = (id) => document.getElementById(id);
const LABELS = { 1: "1 Bad", 2: "2 Poor", 3: "3 Fair", 4: "4 Good", 5: "5 Excellent" };
const QUESTIONS = {
  acr: "How good is the quality of this image?",
  dcr: "How good is the right image compared with the reference on the left?",
  pair: "Which image has the better quality?",
};
let csrf = null;
let current = null;   // the trial on screen
let busy = false;     // a request is in flight: keys and clicks wait (no double submission)
let view = { scale: 1, x: 0, y: 0 };  // one zoom/pan shared by every image of the trial

async function api(method, url, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok && response.status !== 401) throw new Error(data.detail || response.statusText);
  return { status: response.status, data };
}

function show(id) {
  for (const section of ["consent", "study", "finished"]) $(section).hidden = section !== id;
}

function fail(error) {
  $("error").textContent = "Something went wrong: " + error.message + " (reload the page to continue)";
  $("error").hidden = false;
  busy = false;
}

async function boot() {
  const { status, data } = await api("GET", "/api/session");
  if (status === 401) {
    const design = (await api("GET", "/api/health")).data.design;
    $("instructions").textContent = QUESTIONS[design] + " You will see one trial at a time.";
    show("consent");
    return;
  }
  csrf = data.csrf;
  await next();
}

async function start() {
  busy = true;
  const { data } = await api("POST", "/api/session", { consent: true });
  csrf = data.csrf;
  await next();
}

async function next() {
  busy = true;
  const { data } = await api("GET", "/api/next");
  if (data.done) { show("finished"); busy = false; return; }
  current = data;
  $("study").dataset.trial = data.trial;  // for end-to-end tests: which trial is on screen
  render(data);
  show("study");
  busy = false;
}

function render(trial) {
  $("fill").style.width = (100 * trial.rated / trial.total) + "%";
  $("count").textContent = `Trial ${trial.position} of ${trial.total}`;
  $("question").textContent = QUESTIONS[trial.design];
  view = { scale: 1, x: 0, y: 0 };
  const views = $("views");
  views.replaceChildren();
  const slots = trial.design === "pair" ? [["left", "Left (\u2190)"], ["right", "Right (\u2192)"]]
    : trial.design === "dcr" ? [["reference", "Reference"], ["image", "Rated image"]] : [["image", ""]];
  for (const [slot, label] of slots) {
    const box = document.createElement("div");
    box.className = "view";
    box.dataset.slot = slot;
    if (label) {
      const tag = document.createElement("span");
      tag.className = "label";
      tag.textContent = label;
      box.append(tag);
    }
    const img = document.createElement("img");
    img.alt = label || "image to rate";
    img.src = trial.images[slot];
    img.addEventListener("load", () => { if (view.scale === 1) fit(); });
    box.append(img);
    panAndZoom(box);
    views.append(box);
  }
  const answers = $("answers");
  answers.replaceChildren();
  const choices = trial.design === "pair" ? [["left", "\u2190 Left is better"], ["right", "Right is better \u2192"]]
    : [1, 2, 3, 4, 5].map((s) => [s, LABELS[s]]);
  for (const [value, text] of choices) {
    const button = document.createElement("button");
    button.textContent = text;
    button.dataset.answer = value;
    button.addEventListener("click", () => answer(value));
    answers.append(button);
  }
}

function fit() {
  // Start with the whole image visible in the first view, the same transform for every view.
  const box = document.querySelector(".view");
  const img = box && box.querySelector("img");
  if (!img || !img.naturalWidth) return;
  const scale = Math.min(box.clientWidth / img.naturalWidth, box.clientHeight / img.naturalHeight, 1);
  view = { scale, x: (box.clientWidth - img.naturalWidth * scale) / 2, y: (box.clientHeight - img.naturalHeight * scale) / 2 };
  apply();
}

function apply() {
  for (const img of document.querySelectorAll(".view img")) {
    img.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
  }
}

function panAndZoom(box) {
  box.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = box.getBoundingClientRect();
    const factor = event.deltaY < 0 ? 1.25 : 0.8;
    zoomAt(event.clientX - rect.left, event.clientY - rect.top, factor);
  }, { passive: false });
  const pointers = new Map();
  let pinch = null;
  box.addEventListener("pointerdown", (event) => { box.setPointerCapture(event.pointerId); pointers.set(event.pointerId, event); });
  box.addEventListener("pointermove", (event) => {
    const last = pointers.get(event.pointerId);
    if (!last) return;
    pointers.set(event.pointerId, event);
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const distance = Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY);
      if (pinch) {
        const rect = box.getBoundingClientRect();
        zoomAt((a.clientX + b.clientX) / 2 - rect.left, (a.clientY + b.clientY) / 2 - rect.top, distance / pinch);
      }
      pinch = distance;
      return;
    }
    view.x += event.clientX - last.clientX;
    view.y += event.clientY - last.clientY;
    apply();
  });
  const release = (event) => { pointers.delete(event.pointerId); pinch = null; };
  box.addEventListener("pointerup", release);
  box.addEventListener("pointercancel", release);
}

function zoomAt(px, py, factor) {
  const scale = Math.min(Math.max(view.scale * factor, 0.05), 32);
  const k = scale / view.scale;
  view = { scale, x: px - (px - view.x) * k, y: py - (py - view.y) * k };
  apply();
}

async function answer(value) {
  if (busy || !current) return;
  busy = true;
  const body = current.design === "pair" ? { trial: current.trial, choice: value } : { trial: current.trial, score: Number(value) };
  try {
    await api("POST", "/api/ratings", body);
    await next();
  } catch (error) {
    fail(error);
  }
}

document.addEventListener("keydown", (event) => {
  if (!current || $("study").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  if (current.design === "pair") {
    if (event.key === "ArrowLeft") answer("left");
    else if (event.key === "ArrowRight") answer("right");
    else return;
  } else if (/^[1-5]$/.test(event.key)) {
    answer(event.key);
  } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
    zoomAt(0, 0, event.key === "ArrowUp" ? 1.25 : 0.8);
  } else {
    return;
  }
  event.preventDefault();
});

$("agree").addEventListener("change", () => { $("start").disabled = !$("agree").checked; });
$("start").addEventListener("click", () => start().catch(fail));
boot().catch(fail);
