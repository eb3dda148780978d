// The demo page: a live inbox through the JS client, and buttons that post sample events.
import { InboxClient, localStorageCursor } from "/demo/notifier-client.js";

const $ = (id) => document.getElementById(id);
const FRIENDS = ["alice", "carol", "dan", "erin"];
let session = null;

async function signIn(user) {
  const response = await fetch("/demo/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail);
  session = body;
  return body;
}

async function api(path, init = {}) {
  const response = await fetch(path, {
    ...init,
    headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" },
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail);
  return body;
}

function render(inbox) {
  $("unread").textContent = String(inbox.unread);
  const groups = [...inbox.groups.values()].sort((a, b) => b.last_at - a.last_at);
  $("groups").replaceChildren(
    ...groups.map((group) => {
      const item = document.createElement("li");
      const what = { follow: "followed you", like: "liked", comment: "commented on", mention: "mentioned you in" }[group.verb] ?? group.verb;
      const on = group.verb === "follow" ? "" : ` ${group.post ?? ""}`;
      item.textContent = `${group.actors.join(", ")} ${what}${on}` + (group.count > 1 ? ` (${group.count})` : "");
      item.className = group.read ? "read" : "unread";
      item.dataset.id = group.id;
      return item;
    }),
  );
}

async function postEvent(kind) {
  const actor = FRIENDS[Math.floor(Math.random() * FRIENDS.length)];
  const base = { id: crypto.randomUUID(), actor, occurred_at: new Date().toISOString() };
  const event = kind === "like"
    ? { ...base, type: "like", post: `post-${1 + Math.floor(Math.random() * 2)}`, owner: session.user }
    : { ...base, type: "follow", user: session.user };
  const response = await fetch("/v1/events", {
    method: "POST",
    headers: { Authorization: `Bearer ${session.service_key}`, "Content-Type": "application/json" },
    body: JSON.stringify(event),
  });
  if (response.status !== 202) $("error").textContent = (await response.json()).detail;
}

function follow(user) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = new InboxClient({
    url: `${scheme}://${location.host}/v1/ws`,
    token: async () => (await signIn(user)).token,
    load: () => api("/v1/me/notifications?limit=100"),
    storage: localStorageCursor(`notifier-demo-cursor:${user}`),
    onChange: (inbox) => {
      $("status").textContent = "live";
      render(inbox);
    },
  });
  client.run().catch((error) => { $("status").textContent = `stopped: ${error.message}`; });
  setInterval(() => { $("status").textContent = client.live ? "live" : "reconnecting…"; }, 500);
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("user").value.trim();
  try {
    await signIn(user);
  } catch (error) {
    $("error").textContent = error.message;
    return;
  }
  $("signin").hidden = true;
  $("inbox").hidden = false;
  $("who").textContent = `signed in as ${user}`;
  follow(user);
});
$("like").addEventListener("click", () => postEvent("like"));
$("follow").addEventListener("click", () => postEvent("follow"));
$("read").addEventListener("click", () => api("/v1/me/notifications/read", { method: "POST", body: '{"all": true}' }));
