"""The page ``momentloc serve`` shows: one HTML document with inline style and script, nothing
fetched from elsewhere.

The player has no native controls: the page draws its own seek bar with a time axis in seconds
above it and one lane of moment bars per rank below it, all in one box, so a second on the
axis, on the seek bar and in a moment bar is the same horizontal position. Every model's score
is a probability (a sigmoid, or CI-MHA's start-end pair probability), shown as a percentage;
should scores ever fall outside [0, 1], each moment's share of the listed scores is shown
instead, labelled so.
"""

from __future__ import annotations

from html import escape

_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>momentloc: __TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
:root{--accent:#e76f51;--bar:#8d99ae;--ink:#1f2430;--muted:#6b7280;--line:#e5e7eb;--soft:#f6f7f9}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.2em auto;max-width:960px;padding:0 1em;color:var(--ink)}
h1{font-size:1.5em;margin:.2em 0}
#meta{color:var(--muted);font-size:.85em;margin:.2em 0 1em;line-height:1.5}
#meta b{color:var(--ink);font-weight:600}
.row{display:flex;gap:.5em;flex-wrap:wrap;align-items:center;margin:.5em 0}
input[type=text]{flex:1;min-width:16em;padding:.5em .6em;border:1px solid #cbd0d8;border-radius:6px;font-size:1em}
select,input[type=number]{padding:.45em;border:1px solid #cbd0d8;border-radius:6px;font-size:.95em;background:#fff}
select{max-width:22em} input[type=number]{width:4.2em}
button,.button{display:inline-flex;align-items:center;gap:.45em;padding:.5em 1em;border:0;border-radius:6px;
  background:var(--ink);color:#fff;font-size:.95em;cursor:pointer}
button:disabled,.button.disabled{opacity:.55;cursor:progress}
.button.light{background:#fff;color:var(--ink);border:1px solid #cbd0d8}
label.small{font-size:.85em;color:var(--muted)}
.spinner{display:none;width:1em;height:1em;border:2px solid rgba(255,255,255,.35);border-top-color:#fff;
  border-radius:50%;animation:spin .8s linear infinite}
.light .spinner{border-color:rgba(0,0,0,.15);border-top-color:var(--ink)}
.busy .spinner{display:inline-block}
@keyframes spin{to{transform:rotate(360deg)}}
#file{position:absolute;width:1px;height:1px;opacity:0}
#status{color:#b42318;min-height:1.3em;font-size:.9em}
#warning{display:none;background:#fff7e6;border:1px solid #f5c46b;color:#7a4b00;padding:.5em .7em;border-radius:6px;font-size:.9em;margin:.4em 0}
#warning.show{display:block}
#stage{background:#000;border-radius:8px 8px 0 0;overflow:hidden;margin-top:.6em}
video{display:block;width:100%;max-height:440px;background:#000;cursor:pointer}
#controls{display:flex;align-items:center;gap:.7em;background:var(--soft);border:1px solid var(--line);border-top:0;
  padding:.4em .7em;border-radius:0 0 8px 8px}
#play{width:2.4em;justify-content:center;padding:.35em}
#clock{font-variant-numeric:tabular-nums;font-size:.85em;color:var(--muted);white-space:nowrap}
#timeline{position:relative;flex:1;user-select:none}
#axis{position:relative;height:1.3em;font-size:.72em;color:var(--muted)}
#axis .tick{position:absolute;top:0;height:100%;border-left:1px solid #b8bec9}
#axis .tick span{position:absolute;left:3px;top:0;white-space:nowrap;font-variant-numeric:tabular-nums}
#axis .unit{position:absolute;right:0;top:0}
#track{position:relative;height:10px;background:#dfe3e8;border-radius:5px;cursor:pointer}
#track .fill{position:absolute;left:0;top:0;bottom:0;background:#9aa5b4;border-radius:5px;width:0}
#cursor{position:absolute;top:-4px;bottom:-4px;width:2px;margin-left:-1px;background:var(--ink);pointer-events:none;z-index:3}
#lanes{position:relative;margin-top:4px}
#lanes .lane{position:relative;height:12px;margin:3px 0;background:repeating-linear-gradient(90deg,transparent 0 9px,rgba(0,0,0,.03) 9px 10px)}
#lanes .bar{position:absolute;top:0;height:100%;background:var(--bar);border-radius:3px;cursor:pointer;min-width:3px}
#lanes .bar.top{background:var(--accent)}
#lanes .bar.playing,#lanes .bar:hover{outline:2px solid var(--ink);outline-offset:1px}
#playhead{position:absolute;top:0;bottom:0;width:2px;margin-left:-1px;background:rgba(31,36,48,.55);pointer-events:none}
#results{margin-top:1em}
#results h2{font-size:1em;margin:.2em 0;color:var(--muted);font-weight:600}
#results .note{font-size:.8em;color:var(--muted);margin:.1em 0 .5em}
ol#moments{list-style:none;padding:0;margin:0}
li.moment{display:grid;grid-template-columns:2.2em 11em 1fr 3.8em;align-items:center;gap:.6em;padding:.45em .6em;
  border:1px solid var(--line);border-radius:6px;margin:.3em 0;cursor:pointer;background:#fff}
li.moment:hover{background:var(--soft)}
li.moment.playing{border-color:var(--accent);background:#fdf0ec;box-shadow:0 0 0 1px var(--accent)}
li.moment .rank{font-weight:700;color:var(--muted)}
li.moment .span{font-variant-numeric:tabular-nums}
li.moment .conf{height:8px;background:#eceff3;border-radius:4px;overflow:hidden}
li.moment .conf i{display:block;height:100%;background:var(--bar)}
li.moment:first-child .conf i{background:var(--accent)}
li.moment .pct{text-align:right;font-variant-numeric:tabular-nums;font-size:.9em}
</style></head><body>
<h1>Find a moment</h1>
<div id="meta">run <b id="run">__TITLE__</b></div>
<div class="row">
  <select id="video" aria-label="video"></select>
  <label id="add" class="button light" for="file" title="upload a video file">
    <span class="spinner"></span><span class="label">Add a video&hellip;</span></label>
  <input id="file" type="file" accept="video/*" aria-label="upload a video">
  <span id="uploadnote" class="small"></span>
</div>
<form id="ask" class="row">
  <input id="query" type="text" placeholder="describe what happens, e.g. the red circle moves to the left" aria-label="sentence" required>
  <label class="small" for="topk">moments</label>
  <input id="topk" type="number" min="1" max="100" value="5" aria-label="number of moments">
  <button id="go" type="submit"><span class="spinner"></span><span class="label">Find moments</span></button>
</form>
<div id="status" role="status" aria-live="polite"></div>
<div id="warning" role="alert"></div>
<div id="stage"><video id="player" preload="metadata" playsinline></video></div>
<div id="controls">
  <button id="play" type="button" aria-label="play">&#9654;</button>
  <div id="timeline">
    <div id="axis" aria-hidden="true"></div>
    <div id="track" role="slider" aria-label="seek" tabindex="0" aria-valuemin="0"><div class="fill"></div><div id="cursor"></div></div>
    <div id="lanes"><div id="playhead"></div></div>
  </div>
  <span id="clock">0.0 / 0.0 s</span>
</div>
<div id="results" hidden>
  <h2 id="heading"></h2>
  <p class="note" id="scorenote"></p>
  <ol id="moments"></ol>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const player = $("player");
let info = {top_k: 5, max_top_k: 100, max_upload_bytes: 0, max_query_chars: 1000};
let moments = [], active = null, stopAt = null, resultDuration = 0;

function fmt(t) { return (Math.round(t * 10) / 10).toFixed(1) + " s"; }
function videoUrl(name) { return "/videos/" + name.split("/").map(encodeURIComponent).join("/"); }
function axisDuration() {
  return Number.isFinite(player.duration) && player.duration > 0 ? player.duration : resultDuration;
}
function pos(t) { const d = axisDuration(); return d > 0 ? Math.min(100, Math.max(0, 100 * t / d)) : 0; }
function setBusy(el, busy, label) {
  el.classList.toggle("busy", busy);
  if (el.tagName === "BUTTON") el.disabled = busy; else el.classList.toggle("disabled", busy);
  el.setAttribute("aria-busy", busy ? "true" : "false");
  if (label) el.querySelector(".label").textContent = label;
}
async function getJSON(r) {
  try { return await r.json(); } catch (e) { return {error: "error " + r.status}; }
}

// --- the time axis, the seek bar and the moment lanes share one box --------------------
function niceStep(d) {
  for (const s of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]) if (d / s <= 10) return s;
  return 7200;
}
function drawAxis() {
  const axis = $("axis"), d = axisDuration();
  axis.replaceChildren();
  if (!(d > 0)) return;
  const step = niceStep(d);
  for (let t = 0; t <= d + 1e-9; t += step) {
    const tick = document.createElement("div");
    tick.className = "tick"; tick.style.left = pos(t) + "%"; tick.dataset.t = t;
    const label = document.createElement("span");
    label.textContent = (step < 1 ? t.toFixed(1) : String(Math.round(t))) + " s";
    tick.appendChild(label);
    if (pos(t) < 96) axis.appendChild(tick);
  }
  $("track").setAttribute("aria-valuemax", d.toFixed(1));
  drawBars();
}
function drawBars() {
  for (const lane of document.querySelectorAll("#lanes .lane")) lane.remove();
  moments.forEach((m, i) => {
    const lane = document.createElement("div"); lane.className = "lane";
    const bar = document.createElement("div");
    bar.className = "bar" + (i === 0 ? " top" : ""); bar.dataset.rank = m.rank;
    bar.style.left = pos(m.start) + "%";
    bar.style.width = Math.max(0, pos(m.end) - pos(m.start)) + "%";
    bar.title = "#" + m.rank + ": " + fmt(m.start) + " \u2013 " + fmt(m.end);
    bar.addEventListener("click", () => playMoment(m));
    m.bar = bar; lane.appendChild(bar); $("lanes").appendChild(lane);
  });
  tick();
}
function tick() {
  const t = player.currentTime || 0, d = axisDuration();
  $("cursor").style.left = pos(t) + "%";
  $("playhead").style.left = pos(t) + "%";
  document.querySelector("#track .fill").style.width = pos(t) + "%";
  $("clock").textContent = (Math.round(t * 10) / 10).toFixed(1) + " / " + fmt(d || 0);
  $("track").setAttribute("aria-valuenow", t.toFixed(1));
  for (const m of moments) {
    const on = m === active && t >= m.start - 0.05 && t <= m.end + 0.05;
    m.li.classList.toggle("playing", on); if (m.bar) m.bar.classList.toggle("playing", on);
  }
}
function seekTo(t) { player.currentTime = Math.max(0, Math.min(axisDuration(), t)); tick(); }
function seekFromEvent(ev) {
  const r = $("track").getBoundingClientRect();
  seekTo(axisDuration() * (ev.clientX - r.left) / r.width);
}
let dragging = false;
$("track").addEventListener("pointerdown", (ev) => {
  if (!(axisDuration() > 0)) return;
  dragging = true; $("track").setPointerCapture(ev.pointerId); stopAt = null; seekFromEvent(ev);
});
$("track").addEventListener("pointermove", (ev) => { if (dragging) seekFromEvent(ev); });
$("track").addEventListener("pointerup", () => { dragging = false; });
$("track").addEventListener("keydown", (ev) => {
  const step = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
  if (step) { ev.preventDefault(); seekTo(player.currentTime + step); }
});
function togglePlay() {
  if (player.paused) { const p = player.play(); if (p) p.catch(() => {}); } else player.pause();
}
$("play").addEventListener("click", togglePlay);
player.addEventListener("click", togglePlay);
player.addEventListener("play", () => { $("play").innerHTML = "&#10074;&#10074;"; $("play").setAttribute("aria-label", "pause"); frame(); });
player.addEventListener("pause", () => { $("play").innerHTML = "&#9654;"; $("play").setAttribute("aria-label", "play"); tick(); });
player.addEventListener("loadedmetadata", drawAxis);
player.addEventListener("timeupdate", () => {
  if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
  tick();
});
player.addEventListener("seeked", tick);
function frame() { tick(); if (!player.paused) requestAnimationFrame(frame); }
window.addEventListener("resize", tick);

function playMoment(m) {
  active = m; stopAt = m.end;
  player.currentTime = m.start;
  tick();
  const p = player.play();
  if (p) p.catch(() => {});
}

// --- videos, uploads and queries -------------------------------------------------------
function clearResults() {
  moments = []; active = null; stopAt = null;
  $("moments").replaceChildren(); $("results").hidden = true;
  $("warning").textContent = ""; $("warning").classList.remove("show");
  drawBars();
}
function selectVideo(name) {
  $("video").value = name; player.src = videoUrl(name); resultDuration = 0; clearResults();
}
async function loadVideos(select) {
  const r = await fetch("/api/videos");
  const data = await getJSON(r);
  const sel = $("video"); sel.replaceChildren();
  const uploaded = document.createElement("optgroup"); uploaded.label = "uploaded";
  for (const v of data.videos || []) {
    const o = document.createElement("option"); o.value = v.name;
    o.textContent = v.uploaded ? v.name.replace(/^upload:/, "") : v.name;
    (v.uploaded ? uploaded : sel).appendChild(o);
  }
  if (uploaded.children.length) sel.appendChild(uploaded);
  const names = (data.videos || []).map((v) => v.name);
  if (select && names.includes(select)) selectVideo(select);
  else if (names.length && !player.getAttribute("src")) selectVideo(names[0]);
  if (!names.length) $("status").textContent = "no video in the served directory: add one";
}
async function loadInfo() {
  const r = await fetch("/api/info");
  if (r.ok) info = await getJSON(r);
  const parts = [["run", info.run], ["model", info.model], ["dataset", info.dataset], ["features", info.features]];
  const meta = $("meta"); meta.replaceChildren();
  parts.forEach(([k, v], i) => {
    if (v === undefined || v === null) return;
    if (k === "features") meta.appendChild(document.createElement("br"));
    else if (meta.childNodes.length) meta.appendChild(document.createTextNode(" \u00b7 "));
    meta.appendChild(document.createTextNode(k + " "));
    const b = document.createElement("b"); b.id = k; b.textContent = v; meta.appendChild(b);
  });
  $("topk").value = info.top_k; $("topk").max = info.max_top_k;
  $("query").maxLength = info.max_query_chars;
  if (!info.max_upload_bytes) {
    $("add").hidden = true; $("uploadnote").textContent = "uploads are off for this run";
  } else {
    $("add").title = "upload a video file (at most " + Math.round(info.max_upload_bytes / 1048576) + " MB)";
  }
}
$("video").addEventListener("change", () => selectVideo($("video").value));
$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  $("file").value = "";
  if (!file) return;
  $("status").textContent = "";
  if (file.size > info.max_upload_bytes) {
    $("status").textContent = file.name + " is larger than the upload limit of " +
      Math.round(info.max_upload_bytes / 1048576) + " MB";
    return;
  }
  setBusy($("add"), true, "Uploading\u2026"); $("file").disabled = true;
  try {
    const r = await fetch("/api/upload?name=" + encodeURIComponent(file.name),
      {method: "POST", headers: {"Content-Type": file.type || "application/octet-stream"}, body: file});
    const data = await getJSON(r);
    if (!r.ok) { $("status").textContent = data.error || ("error " + r.status); return; }
    await loadVideos(data.name);
  } catch (e) {
    $("status").textContent = "upload failed: " + e;
  } finally {
    setBusy($("add"), false, "Add a video\u2026"); $("file").disabled = false;
  }
});
function showWarning(data) {
  let text = data.warning || "";
  if (!text && data.unknown_words && data.unknown_words.length)
    text = "not in the run's vocabulary: " + data.unknown_words.join(", ");
  $("warning").textContent = text; $("warning").classList.toggle("show", !!text);
}
function showMoments(data) {
  const list = (data.moments || []).filter((m) => Number.isFinite(m.start) && Number.isFinite(m.end));
  const scores = list.map((m) => (typeof m.score === "number" && Number.isFinite(m.score) ? m.score : null));
  const probability = scores.every((x) => x === null || (x >= 0 && x <= 1));
  const total = scores.reduce((a, b) => a + Math.max(0, b || 0), 0);
  moments = list.map((m, i) => ({start: m.start, end: m.end, rank: m.rank || i + 1, score: scores[i],
    share: scores[i] === null ? null : probability ? scores[i] : total > 0 ? Math.max(0, scores[i]) / total : null}));
  $("scorenote").textContent = !moments.length ? "" : (probability
    ? "Confidence: the model's probability for each moment"
    : "Relative score: each moment's share of the model's scores over the moments listed") +
    " (the raw score on hover). Click a moment to play it.";
  for (const m of moments) {
    const li = document.createElement("li");
    li.className = "moment"; li.tabIndex = 0;
    li.dataset.start = m.start; li.dataset.end = m.end; li.dataset.rank = m.rank;
    const rank = document.createElement("span"); rank.className = "rank"; rank.textContent = "#" + m.rank;
    const span = document.createElement("span"); span.className = "span";
    span.textContent = fmt(m.start) + " \u2013 " + fmt(m.end);
    const conf = document.createElement("span"); conf.className = "conf";
    const fill = document.createElement("i"); fill.style.width = (m.share === null ? 0 : 100 * m.share) + "%";
    conf.appendChild(fill);
    const pct = document.createElement("span"); pct.className = "pct";
    pct.textContent = m.share === null ? "\u2014"
      : (100 * m.share < 9.95 ? (100 * m.share).toFixed(1) : Math.round(100 * m.share)) + "%";
    li.title = m.score === null ? "no score" : "model score " + m.score.toPrecision(3);
    li.append(rank, span, conf, pct);
    li.addEventListener("click", () => playMoment(m));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") playMoment(m); });
    m.li = li; $("moments").appendChild(li);
  }
  $("heading").textContent = moments.length
    ? moments.length + (moments.length === 1 ? " moment" : " moments") + " for \u201c" + data.query + "\u201d"
    : "no moment for \u201c" + data.query + "\u201d";
  $("results").hidden = false;
  drawBars();
}
$("ask").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if ($("go").disabled) return;
  $("status").textContent = "";
  clearResults();
  const topK = parseInt($("topk").value, 10);
  const body = {video: $("video").value, query: $("query").value,
                top_k: Number.isFinite(topK) ? topK : info.top_k};
  setBusy($("go"), true, "Finding\u2026"); $("ask").setAttribute("aria-busy", "true");
  try {
    const r = await fetch("/api/query", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify(body)});
    const data = await getJSON(r);
    if (!r.ok) { $("status").textContent = data.error || ("error " + r.status); return; }
    if (data.duration > 0) resultDuration = data.duration;
    showWarning(data);
    showMoments(data);
  } catch (e) {
    $("status").textContent = "request failed: " + e;
  } finally {
    setBusy($("go"), false, "Find moments"); $("ask").setAttribute("aria-busy", "false");
  }
});
Promise.all([loadInfo(), loadVideos()]).catch((e) => { $("status").textContent = "cannot reach the server: " + e; })
  .finally(() => { document.body.dataset.ready = "1"; });
</script>
</body></html>
"""


def page_html(title: str) -> str:
    return _PAGE.replace("__TITLE__", escape(title))
