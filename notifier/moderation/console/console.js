// Moderator console: vanilla JS, no build step. Every user-supplied string is inserted with
// textContent, never as HTML. Changes arrive pushed over one server-sent event stream
// (/v1/moderation/live, read with fetch so the token stays in a header); nothing polls.
"use strict";

const RECONNECT_MS = 1000;
const REFRESH_DEBOUNCE_MS = 100;
const $ = (id) => document.getElementById(id);
const ui = {
  token: sessionStorage.getItem("moderationToken") || "",
  items: [],
  next: null,
  selected: null, // item id
  detail: null, // the selected item's full record
  actor: null, // the selected item's actor: ban, dropped events
  picked: new Set(), // item ids selected for a bulk decision
  live: null, // AbortController of the event stream
  refreshTimer: null,
  rows: new WeakMap(), // queue row → the item it shows, as JSON
  note: { id: null, text: "" }, // the note being typed, per item
};

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function say(message) {
  $("status").textContent = message;
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${ui.token}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || response.statusText);
    error.status = response.status;
    error.reason = body.error;
    throw error;
  }
  return body;
}

function tokenUser(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub || "?";
  } catch {
    return "?";
  }
}

const when = (ms) => new Date(ms).toLocaleString();
const itemPath = (id, action = "") => `/v1/moderation/items/${encodeURIComponent(id)}${action}`;

// -- sign in ------------------------------------------------------------------------------

async function signIn(token) {
  ui.token = token.trim();
  try {
    await api("/v1/moderation/items?limit=1");
  } catch (error) {
    ui.token = "";
    sessionStorage.removeItem("moderationToken");
    $("signin-error").textContent =
      error.status === 403 ? "This token is not a moderator's." : `Sign-in failed: ${error.message}`;
    return;
  }
  sessionStorage.setItem("moderationToken", ui.token);
  $("signin-error").textContent = "";
  $("signin").hidden = true;
  $("console").hidden = false;
  $("signout").hidden = false;
  $("help-button").hidden = false;
  $("who").textContent = `signed in as ${tokenUser(ui.token)}`;
  listen(); // its ready frame loads the queue, the audit trail and the bans
  await verifyAudit();
}

function signOut() {
  if (ui.live) ui.live.abort();
  ui.live = null;
  sessionStorage.removeItem("moderationToken");
  ui.token = "";
  $("console").hidden = true;
  $("signout").hidden = true;
  $("help-button").hidden = true;
  $("signin").hidden = false;
  $("who").textContent = "";
  $("live").textContent = "";
}

function onError(error) {
  if (error.status === 401) {
    signOut();
    $("signin-error").textContent = "Your token expired or was refused; sign in again.";
    return;
  }
  say(`error: ${error.message}`);
}

// -- live updates -----------------------------------------------------------------------------

async function listen() {
  const controller = new AbortController();
  ui.live = controller;
  while (ui.live === controller) {
    try {
      const response = await fetch("/v1/moderation/live", {
        headers: { Authorization: `Bearer ${ui.token}` },
        signal: controller.signal,
      });
      if (response.status === 401) return onError(Object.assign(new Error("refused"), { status: 401 }));
      if (!response.ok || !response.body) throw new Error(response.statusText);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) !== -1) {
          onFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    $("live").textContent = "live: reconnecting";
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function onFrame(frame) {
  if (frame.startsWith("event: ready")) {
    $("live").textContent = "live";
    $("live").dataset.state = "ready";
    // subscribed: load what changed before, or while the stream was down
    refreshAudit().catch(onError);
    refreshBans().catch(onError);
    scheduleRefresh(ui.selected);
    return;
  }
  const data = frame.split("\n").find((line) => line.startsWith("data: "));
  if (!data) return; // a heartbeat
  const change = JSON.parse(data.slice(6));
  if (change.kind === "audit") {
    refreshAudit().catch(onError);
    if (["ban", "suspend", "unban"].includes(change.action)) refreshBans().catch(onError);
  }
  scheduleRefresh(change.kind === "item" ? change.id : change.item);
}

// One lane per panel: its fetches run one at a time, in the order asked, so a slow answer (to
// the filter before a change, or from before a decision) never lands after a newer one and
// replaces it. A refresh asked for while another waits its turn joins that one, so a burst of
// changes costs one fetch.
function lane() {
  let tail = Promise.resolve();
  return (run) => (tail = tail.catch(() => {}).then(run));
}

function coalesced(inLane, load) {
  let waiting = null;
  return () =>
    (waiting ??= inLane(() => {
      waiting = null;
      return load();
    }));
}

function scheduleRefresh(changedId) {
  if (changedId && changedId === ui.selected) ui.selectedChanged = true;
  clearTimeout(ui.refreshTimer);
  ui.refreshTimer = setTimeout(() => refresh().catch(onError), REFRESH_DEBOUNCE_MS);
}

// -- the queue ------------------------------------------------------------------------------

function queueQuery(after) {
  const params = new URLSearchParams({ limit: "50" });
  const state = $("filter-state").value;
  const reason = $("filter-reason").value;
  const actor = $("filter-actor").value.trim();
  const text = $("filter-text").value.trim();
  if (state) params.set("state", state);
  if (["open", "pending", "claimed"].includes(state)) params.set("order", "urgency");
  if (reason) params.set("reason", reason);
  if (actor) params.set("actor", actor);
  if (text) params.set("q", text);
  if (after) params.set("after", String(after));
  return `/v1/moderation/items?${params}`;
}

const queueLane = lane();
const refresh = coalesced(queueLane, loadQueue);
const more = () => queueLane(loadMore);

async function loadQueue() {
  const [page, stats] = await Promise.all([api(queueQuery(null)), api("/v1/moderation/stats")]);
  ui.items = page.items;
  ui.next = page.next;
  for (const id of [...ui.picked]) if (!ui.items.some((i) => i.id === id)) ui.picked.delete(id);
  renderQueue();
  renderStats(stats);
  if (ui.selected && ui.selectedChanged) {
    ui.selectedChanged = false;
    await loadDetail(ui.selected, false);
  }
}

function renderStats(s) {
  const wait = s.oldest_wait_s ? ` · oldest waits ${Math.round(s.oldest_wait_s / 60)} min` : "";
  $("stats").textContent = `${s.pending} pending · ${s.claimed} claimed · ${s.held} held${wait}`;
}

async function loadMore() {
  if (!ui.next) return;
  const page = await api(queueQuery(ui.next));
  ui.items = ui.items.concat(page.items);
  ui.next = page.next;
  renderQueue();
}

function badge(text, cls = text) {
  return el("span", { class: `badge ${cls}`, text });
}

function row(item) {
  const rules = [...new Set(item.verdicts.map((v) => v.rule))].join(", ");
  const box = el("input", { type: "checkbox", "aria-label": `select ${item.id}` });
  box.addEventListener("click", (event) => {
    event.stopPropagation();
    pick(item.id, box.checked);
  });
  const claim = item.state === "claimed" ? ` · claimed by ${item.claimed_by}` : "";
  const li = el(
    "li",
    { "data-id": item.id, role: "option" },
    box,
    badge(item.action),
    badge(item.state),
    item.reporters ? badge(`${item.reporters} report${item.reporters > 1 ? "s" : ""}`, "reporters") : "",
    el("span", { class: "text", text: item.text || `(${item.type} ${item.actor})` }),
    el("span", { class: "meta", text: `${item.actor}${rules ? ` · ${rules}` : ""}${claim}` }),
  );
  li.addEventListener("click", () => select(item.id, true).catch(onError));
  return li;
}

// Rows are kept while their item is unchanged: a live refresh must not replace the row a
// moderator is clicking (or the one a screen reader is on), only the rows whose item changed.
function renderQueue() {
  const list = $("queue");
  const looks = new Map(ui.items.map((item) => [item.id, JSON.stringify(item)]));
  const kept = new Map();
  for (const li of [...list.children]) {
    if (ui.rows.get(li) === looks.get(li.dataset.id)) kept.set(li.dataset.id, li);
    else li.remove();
  }
  ui.items.forEach((item, at) => {
    let li = kept.get(item.id);
    if (!li) {
      li = row(item);
      ui.rows.set(li, looks.get(item.id));
    }
    if (list.children[at] !== li) list.insertBefore(li, list.children[at] || null);
    const selected = String(item.id === ui.selected);
    if (li.getAttribute("aria-selected") !== selected) li.setAttribute("aria-selected", selected);
    li.querySelector("input").checked = ui.picked.has(item.id);
  });
  $("queue-count").textContent = `${ui.items.length} item(s)${ui.next ? " and more" : ""}`;
  $("more").hidden = !ui.next;
  $("bulk").hidden = ui.picked.size === 0;
  $("bulk-count").textContent = `${ui.picked.size} selected`;
}

function pick(id, on) {
  if (on) ui.picked.add(id);
  else ui.picked.delete(id);
  renderQueue();
}

async function select(id, claim) {
  ui.selected = id;
  renderQueue();
  await loadDetail(id, claim);
}

async function move(step) {
  if (!ui.items.length) return;
  const at = ui.items.findIndex((i) => i.id === ui.selected);
  const next = Math.min(ui.items.length - 1, Math.max(0, at + step));
  await select(ui.items[at === -1 ? 0 : next].id, false); // looking is not claiming
}

// -- one item -------------------------------------------------------------------------------

async function loadDetail(id, claim) {
  let body = await api(itemPath(id));
  if (claim && body.item.state === "pending") {
    try {
      body = { ...body, item: (await api(itemPath(id, "/claim"), { method: "POST" })).item };
    } catch (error) {
      if (error.reason !== "claimed" && error.reason !== "decided") throw error;
      say(error.message);
    }
  }
  const actor = await api(`/v1/moderation/actors/${encodeURIComponent(body.item.actor)}?limit=10`);
  if (ui.selected !== id) return;
  ui.detail = body;
  ui.actor = actor;
  ui.items = ui.items.map((i) => (i.id === id ? body.item : i));
  renderQueue();
  renderDetail();
}

function table(head, rows) {
  return el(
    "table",
    {},
    el("tr", {}, ...head.map((h) => el("th", { text: h }))),
    ...rows.map((row) => el("tr", {}, ...row.map((cell) => el("td", { text: cell })))),
  );
}

function renderDetail() {
  const { item, recipients, post, reports, history } = ui.detail;
  const { ban, dropped } = ui.actor;
  const me = tokenUser(ui.token);
  const open = item.state === "pending" || item.state === "claimed";
  const othersClaim = item.state === "claimed" && item.claimed_by !== me;
  const banned = ban && (!ban.until_ms || ban.until_ms > Date.now());
  const note = el("input", { id: "note", placeholder: "note (kept in the audit trail)", autocomplete: "off" });
  if (ui.note.id === item.id) note.value = ui.note.text; // a live re-render keeps what is typed
  note.addEventListener("input", () => (ui.note = { id: item.id, text: note.value }));
  const button = (label, cls, action, enabled) =>
    el("button", { type: "button", class: cls, text: label, disabled: !enabled, onclick: () => action().catch(onError) });
  const claim = item.state === "claimed" ? ` · claimed by ${item.claimed_by} until ${new Date(item.claim_until_ms).toLocaleTimeString()}` : "";
  const reasons = Object.entries(item.reasons || {}).map(([r, n]) => `${r} ×${n}`).join(", ");
  const banText = banned
    ? `BANNED${ban.until_ms ? ` until ${when(ban.until_ms)}` : ""} by ${ban.by}: ${ban.reason}`
    : "not banned";
  $("detail").replaceChildren(
    el("h2", {}, badge(item.action), badge(item.state), `${item.type} by ${item.actor}`),
    el("p", { class: "muted", text: `item ${item.id} · ${when(item.created_ms)} · ${item.delivered ? "delivered" : "not delivered"}${item.position ? ` · log ${item.position}` : ""}${claim}` }),
    el("blockquote", { id: "detail-text", text: item.text || "(no text)" }),
    el("p", { id: "detail-audience", text: item.type === "actor" ? "a report on the actor" : `sent to ${recipients.join(", ") || "nobody"} · post ${post}` }),
    el("h3", { text: "Why" }),
    item.verdicts.length
      ? table(["rule", "reason", "score"], item.verdicts.map((v) => [v.rule, v.reason, v.score.toFixed(2)]))
      : el("p", { class: "muted", text: "no rule fired" }),
    el("h3", { text: `Reports (${item.reporters || 0})${reasons ? `: ${reasons}` : ""}` }),
    el("ul", { id: "detail-reports", class: "reports" }, ...reports.map((r) => el("li", { text: `${r.reporter}: ${r.reason}${r.note ? ` — ${r.note}` : ""} · ${when(r.at_ms)}` }))),
    el("h3", { text: `Actor ${item.actor}` }),
    el("p", { id: "detail-actor", text: `${banText} · ${dropped.count} event(s) dropped for a ban` }),
    el("ul", { id: "detail-enforcement", class: "history" }, ...ui.actor.enforcement.map((e) => el("li", { text: `${when(e.at_ms)} · ${e.action}${e.until_ms ? ` until ${when(e.until_ms)}` : ""} by ${e.by}: ${e.reason}` }))),
    el("ul", { id: "detail-history", class: "history" }, ...history.map((r) => el("li", { text: `${when(r.created_ms)} · ${r.action} · ${r.state} · ${r.rules.join(", ") || "-"} · “${r.text}”` }))),
    el(
      "div",
      { class: "actions" },
      note,
      button("Approve (a)", "approve", () => decide("approve"), open && !othersClaim),
      button("Reject (r)", "reject", () => decide("reject"), item.state !== "rejected" && !othersClaim),
      button("Ban actor (b)", "ban", () => ban_(), !banned),
    ),
    item.decided_by ? el("p", { class: "muted", text: `decided by ${item.decided_by}: ${item.note || "(no note)"}` }) : "",
    el("details", {}, el("summary", { text: "event" }), el("pre", { text: JSON.stringify(item.event, null, 2) })),
  );
}

function nextAfter(id) {
  const at = ui.items.findIndex((i) => i.id === id);
  const rest = ui.items.filter((i) => i.id !== id);
  return rest.length ? rest[Math.min(at, rest.length - 1)].id : null;
}

// The item a key acts on: the one shown, and only once it is the one selected (a key pressed
// while the next item loads must not act on the previous one).
function current() {
  if (ui.detail && ui.detail.item.id === ui.selected) return ui.detail.item;
  if (ui.selected) say("still loading the selected item");
  return null;
}

async function decide(decision) {
  if (!current()) return;
  const id = ui.detail.item.id;
  const note = ($("note") && $("note").value) || "";
  const result = await api(itemPath(id, `/${decision}`), { method: "POST", body: { note } });
  say(`${decision === "approve" ? "approved" : "rejected"} ${id}${result.effect ? ` (${result.effect.split("|")[0]} queued)` : ""}`);
  const following = nextAfter(id);
  await refresh();
  const landing = ui.items.some((i) => i.id === following) ? following : ui.items.length ? ui.items[0].id : null;
  if (landing) await select(landing, false);
  else clearDetail();
}

function clearDetail() {
  ui.selected = null;
  ui.detail = null;
  $("detail").replaceChildren(el("p", { class: "empty", text: "Nothing left in this view." }));
}

async function bulk(decision) {
  if (!ui.picked.size) return;
  const ids = [...ui.picked];
  const note = ($("note") && $("note").value) || "";
  const result = await api("/v1/moderation/decisions", { method: "POST", body: { decision, ids, note } });
  const changed = result.results.filter((r) => r.status === "changed").length;
  const refused = result.results.filter((r) => r.status === "refused");
  ui.picked.clear();
  say(`${decision === "approve" ? "approved" : "rejected"} ${changed} of ${ids.length}${refused.length ? `; refused: ${refused.map((r) => `${r.id} (${r.error})`).join(", ")}` : ""}`);
  await refresh();
}

async function ban_() {
  if (!current()) return;
  const actor = ui.detail.item.actor;
  const reason = (window.prompt(`Why ban ${actor}? (required; kept in the audit trail)`) || "").trim();
  if (!reason) {
    say("not banned: a ban needs a reason");
    return;
  }
  const hours = Number((window.prompt("Suspend for how many hours? (empty: ban until lifted)") || "").trim() || 0);
  const remove = window.confirm(`Also remove everything ${actor} delivered (comments and mentions)?`);
  const body = { actor, reason, duration_s: Math.round(hours * 3600), remove_content: remove };
  const result = await api("/v1/moderation/bans", { method: "POST", body });
  say(`${hours ? "suspended" : "banned"} ${actor}; rejected ${result.rejected.length} item(s)`);
  await Promise.all([refresh(), refreshBans(), loadDetail(ui.detail.item.id, false)]);
}

// -- bans -------------------------------------------------------------------------------------

const refreshBans = coalesced(lane(), loadBans);

async function loadBans() {
  const { bans } = await api("/v1/moderation/bans");
  $("bans").replaceChildren(
    ...bans.map((b) => {
      const lift = el("button", { type: "button", text: "Unban", "aria-label": `unban ${b.actor}` });
      lift.addEventListener("click", () => unban(b.actor).catch(onError));
      const until = b.until_ms ? ` until ${when(b.until_ms)}` : "";
      return el("li", { "data-actor": b.actor }, el("span", { text: `${b.actor}${until} — ${b.reason}` }), lift);
    }),
  );
  if (!bans.length) $("bans").append(el("li", { class: "muted", text: "nobody is banned" }));
}

async function unban(actor) {
  const reason = (window.prompt(`Why lift the ban on ${actor}? (required)`) || "").trim();
  if (!reason) {
    say("still banned: lifting a ban needs a reason");
    return;
  }
  await api(`/v1/moderation/bans/${encodeURIComponent(actor)}/lift`, { method: "POST", body: { reason } });
  say(`unbanned ${actor}`);
  await refreshBans();
}

// -- audit ------------------------------------------------------------------------------------

const refreshAudit = coalesced(lane(), loadAudit);

async function loadAudit() {
  const page = await api("/v1/moderation/audit?order=newest&limit=30");
  $("audit-list").replaceChildren(
    ...page.records.map(({ record }) =>
      el("li", { text: `${new Date(record.at_ms).toLocaleTimeString()} ${record.who} (${record.role}) ${record.action} ${record.item || record.actor}${record.reason ? ` — ${record.reason}` : ""}` }),
    ),
  );
}

async function verifyAudit() {
  const check = await api("/v1/moderation/audit/verify");
  const verify = $("audit-verify");
  verify.className = check.ok ? "ok" : "broken";
  verify.textContent = check.ok
    ? `chain intact (${check.checked} records, ${new Date().toLocaleTimeString()})`
    : `CHAIN BROKEN at ${check.broken_at}: ${check.problem}`;
}

// -- wiring -----------------------------------------------------------------------------------

function typing(event) {
  const tag = event.target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
}

function toggleHelp(show) {
  $("help").hidden = show === undefined ? !$("help").hidden : !show;
}

document.addEventListener("keydown", (event) => {
  if ($("console").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event)) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  const actions = {
    j: () => move(1),
    k: () => move(-1),
    a: () => decide("approve"),
    r: () => decide("reject"),
    A: () => bulk("approve"),
    R: () => bulk("reject"),
    x: () => ui.selected && pick(ui.selected, !ui.picked.has(ui.selected)),
    b: () => ban_(),
    c: () => ui.selected && loadDetail(ui.selected, true),
    Enter: () => ui.selected && loadDetail(ui.selected, true),
    n: () => $("note") && $("note").focus(),
    "/": () => $("filter-actor").focus(),
    s: () => $("filter-text").focus(),
    v: () => verifyAudit(),
    "?": () => toggleHelp(),
    Escape: () => toggleHelp(false),
  };
  const action = actions[event.key];
  if (!action) return;
  event.preventDefault();
  Promise.resolve(action()).catch(onError);
});

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token").value).catch(onError);
});
$("signout").addEventListener("click", signOut);
$("help-button").addEventListener("click", () => toggleHelp());
$("verify").addEventListener("click", () => verifyAudit().catch(onError));
$("more").addEventListener("click", () => more().catch(onError));
$("bulk-approve").addEventListener("click", () => bulk("approve").catch(onError));
$("bulk-reject").addEventListener("click", () => bulk("reject").catch(onError));
for (const id of ["filter-state", "filter-reason", "filter-actor", "filter-text"]) {
  $(id).addEventListener("change", () => refresh().catch(onError));
}
if (ui.token) signIn(ui.token).catch(onError);
