// The review page: one item at a time, its spectrogram, clip and mark buttons.
// A mark counts as saved only once POST /api/marks has answered (the server has written
// it to marks.csv by then); GET /api/marks is polled so that two tabs converge. Every mark
// carries the name of who is marking, asked on first use and kept in this browser.
"use strict";

const PARAMS = new URLSearchParams(location.search);
// every 3 s; ?poll=MS changes it (the browser test polls faster)
const POLL_MS = Math.max(200, Number(PARAMS.get("poll")) || 3000);
// the token of the address `soundclf review` printed: the server answers nothing of the set without it
const TOKEN = PARAMS.get("token") || "";
const SCORE_KEY = "soundclf.review.showScore";
const NAME_KEY = "soundclf.review.reviewer";
const $ = (id) => document.getElementById(id);

const state = {
  review: {}, items: [], byId: {}, marks: {},
  offered: "",     // the name the server offers (--reviewer)
  name: "",        // who is marking in this browser; none yet: the page asks
  current: null,   // the item shown
  saving: null,    // {item, mark} while a POST is in flight
  history: [],     // items marked in this tab, latest last (for undo)
  saves: 0,        // marks saved by this tab: a poll that began before one is stale
};

// ---- data -----------------------------------------------------------------------------

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...options.headers, "X-Review-Token": TOKEN } });
  } catch (e) {
    throw new Error("the review server is not reachable (stopped?); start it again, then redo this mark");
  }
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON: an error page */ }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function load() {
  const data = await api("/api/items");
  state.review = data.review;
  state.offered = data.reviewer;
  state.items = data.items.map((item, idx) => ({ ...item, idx }));
  state.byId = Object.fromEntries(state.items.map((item) => [item.item, item]));
  state.marks = data.marks;
  $("set-name").textContent = data.review.name || "review";
  // ?reviewer=NAME answers the question (a link made for one person); else this browser's last answer
  const known = (PARAMS.get("reviewer") || localStorage.getItem(NAME_KEY) || "").trim();
  if (known && !nameProblem(known)) setName(known); else askName();
  document.title = `review ${data.review.name || ""}`;
  const classes = data.review.classes && data.review.classes.length
    ? data.review.classes : [...new Set(state.items.map((i) => i.label))].sort();
  for (const name of classes) {
    $("filter-class").append(new Option(name, name));
    const option = document.createElement("option");
    option.value = name;
    $("class-list").append(option);
  }
  const fromHash = decodeURIComponent(location.hash.replace(/^#item=/, ""));
  const first = state.byId[fromHash] || state.items.find((i) => !state.marks[i.item]) || state.items[0];
  renderProgress();
  if (first) show(first.item); else setStatus("this review set has no items", "error");
}

// ---- who is marking -------------------------------------------------------------------

// why the server would refuse this name (server.py's reviewer_problem), or ""
function nameProblem(name) {
  if (!name) return "say who is marking";
  if (name.length > $("name-input").maxLength) return `a name is at most ${$("name-input").maxLength} characters`;
  if (/[\p{Cc}\p{Cs}\u2028\u2029]/u.test(name)) return "a name is one line of text";
  return "";
}

function setName(name) {
  state.name = name;
  localStorage.setItem(NAME_KEY, name);
  $("reviewer").textContent = `marking as ${name}`;
  $("change-name").hidden = false;
  $("name-form").hidden = true;
}

function askName() {
  $("name-form").hidden = false;
  $("name-input").value = state.name || state.offered;
  $("name-input").focus();
  $("name-input").select();
}

function answerName(e) {
  e.preventDefault();
  const name = $("name-input").value.trim();
  const problem = nameProblem(name);
  $("name-problem").textContent = problem;
  if (problem) return;
  setName(name);
  $("name-input").blur();
  setStatus(`marking as ${name}`, "ok");
}

// ---- which items are shown ------------------------------------------------------------

function passes(item) {
  const mark = state.marks[item.item];
  const cls = $("filter-class").value, wanted = $("filter-mark").value;
  if (cls && item.label !== cls) return false;
  if ($("filter-unmarked").checked && mark) return false;
  if (wanted && (!mark || mark.mark !== wanted)) return false;
  return true;
}

// the next (step 1) or previous (step -1) item that passes the filters, wrapping around
function step(direction, test = passes) {
  const n = state.items.length;
  const from = state.current ? state.byId[state.current].idx : -1;
  for (let k = 1; k <= n; k++) {
    const item = state.items[(((from + direction * k) % n) + n) % n];
    if (item.item !== state.current && test(item)) return item;
  }
  return null;
}

function go(direction) {
  const item = step(direction);
  if (item) show(item.item); else setStatus("no other item matches the filters", "info");
}

// ---- showing an item ------------------------------------------------------------------

function clipSeconds(item) {
  const span = item.clip_end - item.clip_start;
  return span > 0 ? span : ($("player").duration || 1);
}

function show(id) {
  const item = state.byId[id];
  const player = $("player");
  state.current = id;
  history.replaceState(null, "", `#item=${encodeURIComponent(id)}`);
  if (player.dataset.item !== id) {
    player.pause();
    player.dataset.item = id;
    player.src = clipUrl(id, "wav");
    $("spec-img").src = clipUrl(id, "png");
  }
  const span = clipSeconds(item);
  const box = $("window-box");
  box.style.left = `${(100 * (item.start - item.clip_start)) / span}%`;
  box.style.width = `${(100 * (item.end - item.start)) / span}%`;
  $("item-label").textContent = item.label;
  $("item-score").textContent = `score ${Number(item.score).toFixed(3)} (bin ${item.bin}, ${item.drawn_by})`;
  $("item-where").textContent = `${item.file}  ${fmt(item.start)}–${fmt(item.end)} s`;
  const mark = state.marks[id];
  $("note").value = mark ? mark.note : "";
  $("other-label").value = mark && mark.mark === "other" ? mark.other_label : "";
  moveCursor();
  renderItem();
}

function fmt(seconds) { return Number(seconds).toFixed(1); }

// an <audio> or <img> cannot send a header: the token goes in the query
function clipUrl(id, kind) {
  return `/clips/${encodeURIComponent(id)}.${kind}?token=${encodeURIComponent(TOKEN)}`;
}

function renderItem() {
  const id = state.current;
  if (!id) return;
  const shown = state.items.filter(passes);
  const at = shown.findIndex((i) => i.item === id);
  $("position").textContent = `item ${at >= 0 ? at + 1 : "–"} of ${shown.length} shown` +
    (shown.length !== state.items.length ? ` (${state.items.length} in the set)` : "") +
    (at < 0 ? "; this one is outside the filters" : "");
  const el = $("mark-state");
  const mark = state.marks[id];
  if (state.saving && state.saving.item === id) {
    el.className = "saving";
    el.textContent = `saving “${state.saving.mark}”…`;
  } else if (mark) {
    el.className = `saved mark-${mark.mark}`;
    const other = mark.mark === "other" && mark.other_label ? ` (${mark.other_label})` : "";
    el.textContent = `saved: ${mark.mark}${other} by ${mark.reviewer} at ${mark.time}`;
  } else {
    el.className = "unmarked";
    el.textContent = "not marked";
  }
  for (const button of document.querySelectorAll("#buttons button")) {
    const value = button.dataset.mark || "other";
    button.classList.toggle("chosen", Boolean(mark && mark.mark === value));
  }
}

function renderProgress() {
  const body = $("progress").tBodies[0];
  body.replaceChildren();
  const counts = {};
  for (const item of state.items) {
    const c = (counts[item.label] ||= { marked: 0, total: 0 });
    c.total += 1;
    if (state.marks[item.item]) c.marked += 1;
  }
  const all = { marked: 0, total: 0 };
  for (const [name, c] of Object.entries(counts).sort()) {
    all.marked += c.marked; all.total += c.total;
    body.append(progressRow(name, c));
  }
  const total = progressRow("all", all);
  total.className = "total";
  body.append(total);
}

function progressRow(name, c) {
  const row = document.createElement("tr");
  const bar = document.createElement("progress");
  bar.max = c.total; bar.value = c.marked;
  for (const value of [name, `${c.marked} / ${c.total}`, bar]) {
    const cell = document.createElement("td");
    cell.append(value);
    row.append(cell);
  }
  row.dataset.class = name;
  return row;
}

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = kind;
}

function applyScoreSwitch() {
  document.body.classList.toggle("hide-score", !$("show-score").checked);
}

// ---- marking --------------------------------------------------------------------------

async function mark(value, { advance = true, item = state.current } = {}) {
  if (!item) return;
  if (state.saving) { setStatus("still saving the last mark…", "info"); return; }
  if (!state.name) { askName(); setStatus("say who is marking first, then mark again", "info"); return; }
  const body = { reviewer: state.name, item, mark: value, note: $("note").value };
  if (value === "other") body.other_label = $("other-label").value.trim();
  state.saving = { item, mark: value };
  renderItem();
  try {
    const { mark: stored } = await api("/api/marks", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (stored.mark === "cleared") delete state.marks[item]; else state.marks[item] = stored;
    state.saves += 1;
    if (stored.mark !== "cleared") state.history.push(item);
    setStatus(`saved: ${state.byId[item].label} ${stored.mark}${stored.other_label ? " (" + stored.other_label + ")" : ""}`, "ok");
  } catch (e) {
    setStatus(`NOT saved (${value}): ${e.message}`, "error");
    return;
  } finally {
    state.saving = null;
    renderProgress();
    renderItem();
  }
  if (advance && state.current === item) {
    const next = step(1, (i) => passes(i) && !state.marks[i.item]);
    if (next) show(next.item); else setStatus("saved; every item in view is marked", "ok");
  }
}

function undo() {
  let target = state.marks[state.current] ? state.current : null;
  while (!target && state.history.length) {
    const item = state.history.pop();
    if (state.marks[item]) target = item;
  }
  if (!target) { setStatus("nothing to undo", "info"); return; }
  if (target !== state.current) show(target);
  mark("cleared", { advance: false, item: target });
}

function saveOther() {
  mark("other");
  $("other-label").blur();
}

// ---- audio and cursor -----------------------------------------------------------------

function moveCursor() {
  const item = state.byId[state.current];
  if (!item) return;
  const fraction = Math.min(1, Math.max(0, $("player").currentTime / clipSeconds(item)));
  $("cursor").style.left = `${100 * fraction}%`;
}

function followAudio() {
  moveCursor();
  if (!$("player").paused) requestAnimationFrame(followAudio);
}

function togglePlay() {
  const player = $("player");
  if (player.paused) {
    player.play().catch((e) => setStatus(`cannot play the clip: ${e.message}`, "error"));
  } else {
    player.pause();
  }
}

// ---- polling ----------------------------------------------------------------------------

async function poll() {
  const saves = state.saves;
  try {
    const { marks } = await api("/api/marks");
    if (saves !== state.saves || state.saving) return;  // a mark was saved meanwhile: the next poll has it
    state.marks = marks;
    $("banner").hidden = true;
    renderProgress();
    renderItem();
  } catch (e) {
    $("banner").textContent = `Marks cannot be saved now: ${e.message}`;
    $("banner").hidden = false;
  }
}

// ---- wiring -----------------------------------------------------------------------------

const KEYS = {
  y: () => mark("yes"), n: () => mark("no"), u: () => mark("unsure"),
  o: () => $("other-label").focus(), z: undo, " ": togglePlay,
  j: () => go(1), ArrowRight: () => go(1), k: () => go(-1), ArrowLeft: () => go(-1),
};

function typing(target) {
  return target.matches("textarea, select, [contenteditable], input:not([type=checkbox]):not([type=radio])");
}

document.addEventListener("keydown", (e) => {
  if (typing(e.target)) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  if (e.target.id === "player" && [" ", "ArrowLeft", "ArrowRight"].includes(e.key)) return;  // its own keys
  const action = KEYS[e.key];
  if (!action) return;
  e.preventDefault();
  action();
});

function init() {
  for (const button of document.querySelectorAll("button")) {
    button.addEventListener("click", () => button.blur());  // keys keep working after a click
  }
  for (const button of document.querySelectorAll("button[data-mark]")) {
    button.addEventListener("click", () => mark(button.dataset.mark));
  }
  $("other-button").addEventListener("click", () => {
    if ($("other-label").value.trim()) saveOther(); else $("other-label").focus();
  });
  $("other-label").addEventListener("keydown", (e) => { if (e.key === "Enter") saveOther(); });
  $("note").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    const saved = state.marks[state.current];
    $("note").blur();
    if (saved) mark(saved.mark, { advance: false });  // the note, with the mark it already has
  });
  $("prev").addEventListener("click", () => go(-1));
  $("next").addEventListener("click", () => go(1));
  $("play").addEventListener("click", togglePlay);
  $("undo").addEventListener("click", undo);
  $("name-form").addEventListener("submit", answerName);
  $("change-name").addEventListener("click", askName);
  for (const id of ["filter-class", "filter-mark", "filter-unmarked"]) {
    $(id).addEventListener("change", () => { $(id).blur(); renderItem(); });
  }
  $("show-score").checked = localStorage.getItem(SCORE_KEY) === "1";
  $("show-score").addEventListener("change", () => {
    localStorage.setItem(SCORE_KEY, $("show-score").checked ? "1" : "0");
    applyScoreSwitch();
    $("show-score").blur();
  });
  applyScoreSwitch();
  const player = $("player");
  player.addEventListener("play", () => requestAnimationFrame(followAudio));
  for (const event of ["timeupdate", "seeked", "loadedmetadata", "pause"]) player.addEventListener(event, moveCursor);
  player.addEventListener("error", () => {
    // a mark that was not saved matters more than a clip: keep its message, add the clip's
    const unsaved = $("status").textContent.startsWith("NOT saved") ? $("status").textContent + "; " : "";
    setStatus(`${unsaved}the clip could not be loaded`, "error");
  });
  $("spectrogram").addEventListener("click", (e) => {
    const rect = e.currentTarget.getBoundingClientRect();
    player.currentTime = ((e.clientX - rect.left) / rect.width) * clipSeconds(state.byId[state.current]);
    player.play().catch(() => {});
  });
  load().catch((e) => setStatus(`cannot load the review set: ${e.message}`, "error"));
  setInterval(poll, POLL_MS);
}

init();
