// Moderator console: vanilla JS, no build step. Every user-supplied string is inserted with
// textContent, never as HTML. The queue is polled every POLL_MS.
"use strict";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
const ui = {
  token: sessionStorage.getItem("moderationToken") || "",
  items: [],
  next: null,
  selected: null, // item id
  detail: null, // the selected item's full record
  timer: null,
};

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key === "role") node.setAttribute(key, value);
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
  $("who").textContent = `signed in as ${tokenUser(ui.token)}`;
  await refresh();
  ui.timer = setInterval(() => refresh().catch(onError), POLL_MS);
}

function signOut() {
  clearInterval(ui.timer);
  sessionStorage.removeItem("moderationToken");
  ui.token = "";
  $("console").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("who").textContent = "";
}

function onError(error) {
  if (error.status === 401) {
    signOut();
    $("signin-error").textContent = "Your token expired or was refused; sign in again.";
    return;
  }
  say(`error: ${error.message}`);
}

// -- the queue ------------------------------------------------------------------------------

function queueQuery(after) {
  const params = new URLSearchParams({ limit: "50" });
  const state = $("filter-state").value;
  const reason = $("filter-reason").value;
  const actor = $("filter-actor").value.trim();
  if (state) params.set("state", state);
  if (reason) params.set("reason", reason);
  if (actor) params.set("actor", actor);
  if (after) params.set("after", String(after));
  return `/v1/moderation/items?${params}`;
}

async function refresh() {
  const page = await api(queueQuery(null));
  ui.items = page.items;
  ui.next = page.next;
  renderQueue();
  if (ui.selected) await loadDetail(ui.selected, false);
  await refreshAudit();
}

async function more() {
  if (!ui.next) return;
  const page = await api(queueQuery(ui.next));
  ui.items = ui.items.concat(page.items);
  ui.next = page.next;
  renderQueue();
}

function badge(text) {
  return el("span", { class: `badge ${text}`, text });
}

function renderQueue() {
  const list = $("queue");
  list.replaceChildren(
    ...ui.items.map((item) => {
      const rules = [...new Set(item.verdicts.map((v) => v.rule))].join(", ");
      const li = el(
        "li",
        { "data-id": item.id, role: "option" },
        badge(item.action),
        badge(item.state),
        el("span", { class: "text", text: item.text || `(${item.type})` }),
        el("span", { class: "meta", text: `${item.actor} · ${rules}` }),
      );
      li.setAttribute("aria-selected", String(item.id === ui.selected));
      li.addEventListener("click", () => select(item.id).catch(onError));
      return li;
    }),
  );
  $("queue-count").textContent = `${ui.items.length} item(s)${ui.next ? " and more" : ""}`;
  $("more").hidden = !ui.next;
}

async function select(id) {
  ui.selected = id;
  renderQueue();
  await loadDetail(id, true);
}

async function move(step) {
  if (!ui.items.length) return;
  const at = ui.items.findIndex((i) => i.id === ui.selected);
  const next = Math.min(ui.items.length - 1, Math.max(0, at + step));
  await select(ui.items[at === -1 ? 0 : next].id);
}

// -- one item -------------------------------------------------------------------------------

async function loadDetail(id, claim) {
  let body = await api(`/v1/moderation/items/${encodeURIComponent(id)}`);
  if (claim && body.item.state === "pending") {
    try {
      body = { ...body, item: (await api(`/v1/moderation/items/${encodeURIComponent(id)}/claim`, { method: "POST" })).item };
    } catch (error) {
      if (error.reason !== "claimed" && error.reason !== "decided") throw error;
      say(error.message);
    }
  }
  if (ui.selected !== id) return;
  ui.detail = body;
  ui.items = ui.items.map((i) => (i.id === id ? body.item : i));
  renderQueue();
  renderDetail();
}

function renderDetail() {
  const { item, actor_banned: banned } = ui.detail;
  const me = tokenUser(ui.token);
  const open = item.state === "pending" || item.state === "claimed";
  const othersClaim = item.state === "claimed" && item.claimed_by !== me;
  const note = el("input", { id: "note", placeholder: "note (kept in the audit trail)", autocomplete: "off" });
  const button = (label, cls, action, enabled) =>
    el("button", { type: "button", class: cls, text: label, disabled: !enabled, onclick: action });
  const verdicts = el(
    "table",
    {},
    el("tr", {}, el("th", { text: "rule" }), el("th", { text: "reason" }), el("th", { text: "score" })),
    ...item.verdicts.map((v) =>
      el("tr", {}, el("td", { text: v.rule }), el("td", { text: v.reason }), el("td", { text: v.score.toFixed(2) })),
    ),
  );
  const history = el(
    "ul",
    {},
    ...item.context.recent.map((r) =>
      el("li", { text: `${new Date(r.created_ms).toLocaleString()} · ${r.action} · ${r.state} · ${r.rules.join(", ")} · ${r.id}` }),
    ),
  );
  const claim = item.state === "claimed" ? `claimed by ${item.claimed_by} until ${new Date(item.claim_until_ms).toLocaleTimeString()}` : "";
  $("detail").replaceChildren(
    el("h2", {}, badge(item.action), badge(item.state), `${item.type} by ${item.actor}`),
    el("p", { class: "muted", text: `item ${item.id} · ${new Date(item.created_ms).toLocaleString()} · ${item.delivered ? "delivered" : "not delivered"}${claim ? ` · ${claim}` : ""}` }),
    el("blockquote", { id: "detail-text", text: item.text || "(no text)" }),
    el("h3", { text: "Why" }),
    verdicts,
    el("h3", { text: "Actor context" }),
    el("p", { text: `${item.actor}: ${item.context.earlier_items} earlier review item(s)${banned ? " · BANNED" : ""}` }),
    history,
    el(
      "div",
      { class: "actions" },
      note,
      button("Approve (a)", "approve", () => decide("approve"), open && !othersClaim),
      button("Reject (r)", "reject", () => decide("reject"), item.state !== "rejected" && !othersClaim),
      button("Ban actor (b)", "ban", () => ban(), !banned),
    ),
    item.decided_by ? el("p", { class: "muted", text: `decided by ${item.decided_by}: ${item.note || "(no note)"}` }) : "",
    el("details", {}, el("summary", { text: "event" }), el("pre", { text: JSON.stringify(item.event, null, 2) })),
  );
}

async function decide(decision) {
  if (!ui.detail) return;
  const id = ui.detail.item.id;
  const note = ($("note") && $("note").value) || "";
  const result = await api(`/v1/moderation/items/${encodeURIComponent(id)}/${decision}`, { method: "POST", body: { note } });
  say(`${decision === "approve" ? "approved" : "rejected"} ${id}${result.effect ? ` (${result.effect.split("|")[0]} queued)` : ""}`);
  await refresh();
}

async function ban() {
  if (!ui.detail) return;
  const actor = ui.detail.item.actor;
  if (!window.confirm(`Ban ${actor}? Their later events are dropped and their open items rejected.`)) return;
  const reason = ($("note") && $("note").value) || "";
  const result = await api("/v1/moderation/bans", { method: "POST", body: { actor, reason } });
  say(`banned ${actor}; rejected ${result.rejected.length} item(s)`);
  await refresh();
}

// -- audit ------------------------------------------------------------------------------------

async function refreshAudit() {
  const [page, check] = await Promise.all([api("/v1/moderation/audit?limit=100"), api("/v1/moderation/audit/verify")]);
  const verify = $("audit-verify");
  verify.className = check.ok ? "ok" : "broken";
  verify.textContent = check.ok ? `chain intact (${check.checked} records)` : `CHAIN BROKEN at ${check.broken_at}: ${check.problem}`;
  $("audit-list").replaceChildren(
    ...page.records.slice(-30).reverse().map(({ record }) =>
      el("li", { text: `${new Date(record.at_ms).toLocaleTimeString()} ${record.who} (${record.role}) ${record.action} ${record.item || record.actor}${record.reason ? ` — ${record.reason}` : ""}` }),
    ),
  );
}

// -- wiring -----------------------------------------------------------------------------------

function typing(event) {
  const tag = event.target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
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
    b: () => ban(),
    c: () => ui.selected && loadDetail(ui.selected, true),
    n: () => $("note") && $("note").focus(),
    "/": () => $("filter-actor").focus(),
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
$("more").addEventListener("click", () => more().catch(onError));
for (const id of ["filter-state", "filter-reason", "filter-actor"]) {
  $(id).addEventListener("change", () => refresh().catch(onError));
}
if (ui.token) signIn(ui.token).catch(onError);
