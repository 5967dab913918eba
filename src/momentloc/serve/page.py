"""The page ``momentloc serve`` shows: one HTML document with inline style and script."""

from __future__ import annotations

from html import escape

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>momentloc: __TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:900px;padding:0 1em;color:#222}
form{display:flex;gap:.5em;flex-wrap:wrap;margin:.8em 0} input[type=text]{flex:1;min-width:16em;padding:.4em}
select,button{padding:.4em} video{width:100%;max-height:420px;background:#000}
#timeline{position:relative;height:2.2em;background:#eee;margin:.6em 0;border-radius:3px}
#timeline .bar{position:absolute;top:.3em;height:.5em;background:#8d99ae;opacity:.75;cursor:pointer;border-radius:2px}
#timeline .bar.top{background:#e76f51;opacity:.9} #timeline .cursor{position:absolute;top:0;bottom:0;width:2px;background:#222}
ol#moments li{cursor:pointer;padding:.2em} ol#moments li:hover{background:#f3f3f3}
#status{color:#a33;min-height:1.2em} .muted{color:#777;font-size:.85em}
</style></head><body>
<h1>Find a moment</h1>
<p class="muted">run: __TITLE__</p>
<form id="ask">
  <select id="video" aria-label="video"></select>
  <input id="query" type="text" placeholder="describe what happens, e.g. the red circle moves to the left" aria-label="sentence">
  <button id="go" type="submit">Find moments</button>
</form>
<div id="status" role="status"></div>
<video id="player" controls preload="metadata"></video>
<div id="timeline" aria-label="timeline"><div class="cursor" id="cursor"></div></div>
<ol id="moments"></ol>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const player = $("player");
let stopAt = null, duration = 0;
function fmt(t) { return t.toFixed(1) + " s"; }
function videoUrl(name) { return "/videos/" + name.split("/").map(encodeURIComponent).join("/"); }
async function loadVideos() {
  const r = await fetch("/api/videos");
  const data = await r.json();
  for (const v of data.videos) {
    const o = document.createElement("option"); o.value = v.name; o.textContent = v.name; $("video").appendChild(o);
  }
  if (data.videos.length) { player.src = videoUrl(data.videos[0].name); }
  else { $("status").textContent = "no video in the served directory"; }
  document.body.dataset.ready = "1";
}
$("video").addEventListener("change", () => { player.src = videoUrl($("video").value); clear(); });
function clear() {
  $("moments").replaceChildren();
  for (const b of document.querySelectorAll("#timeline .bar")) b.remove();
}
function playMoment(m) {
  stopAt = m.end;
  player.currentTime = m.start;
  const p = player.play();
  if (p) p.catch(() => {});
}
player.addEventListener("timeupdate", () => {
  if (duration > 0) $("cursor").style.left = (100 * player.currentTime / duration) + "%";
  if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
});
$("ask").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("status").textContent = "";
  clear();
  const body = {video: $("video").value, query: $("query").value, top_k: 5};
  let r;
  try {
    r = await fetch("/api/query", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  } catch (e) { $("status").textContent = "request failed: " + e; return; }
  const data = await r.json();
  if (!r.ok) { $("status").textContent = data.error || ("error " + r.status); return; }
  duration = data.duration;
  data.moments.forEach((m, i) => {
    const li = document.createElement("li");
    li.className = "moment"; li.dataset.start = m.start; li.dataset.end = m.end;
    li.textContent = fmt(m.start) + " \\u2013 " + fmt(m.end) + "  (score " + m.score.toFixed(3) + ")";
    li.addEventListener("click", () => playMoment(m));
    $("moments").appendChild(li);
    const bar = document.createElement("div");
    bar.className = "bar" + (i === 0 ? " top" : "");
    bar.style.top = (0.3 + 0.6 * i) + "em";   // one lane per rank
    bar.style.left = (100 * m.start / data.duration) + "%";
    bar.style.width = Math.max(0.5, 100 * (m.end - m.start) / data.duration) + "%";
    bar.title = "#" + (i + 1) + ": " + fmt(m.start) + " \\u2013 " + fmt(m.end);
    bar.addEventListener("click", () => playMoment(m));
    $("timeline").appendChild(bar);
  });
  $("timeline").style.height = (0.6 + 0.6 * Math.max(1, data.moments.length)) + "em";
  if (!data.moments.length) $("status").textContent = "no moment found";
});
loadVideos();
</script>
</body></html>
"""


def page_html(title: str) -> str:
    return _PAGE.replace("__TITLE__", escape(title))
