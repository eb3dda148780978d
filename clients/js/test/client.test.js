// The JS client against the real gateway: tests/e2e/test_js_client.py starts the product (real
// uvicorn and Redis, send queue of one frame) and runs `node --test` with its address and secrets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";

import { ClientStopped, InboxClient, memoryStorage } from "../notifier-client.js";

const BASE = process.env.CLIENT_TEST_BASE;
const SECRET = process.env.CLIENT_TEST_JWT_SECRET;
const SERVICE_KEY = process.env.CLIENT_TEST_SERVICE_KEY;
const AUDIENCE = process.env.CLIENT_TEST_AUDIENCE ?? "notifier";
const WS = BASE.replace("http://", "ws://") + "/v1/ws";
const WAIT_MS = 15_000;

const b64 = (data) => Buffer.from(data).toString("base64url");

function mint(user, ttlS = 600, secret = SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64(JSON.stringify({ sub: user, aud: AUDIENCE, iat: now, exp: now + ttlS }));
  const signature = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

function clientOf(user, options = {}) {
  const loads = [];
  const client = new InboxClient({
    url: WS,
    token: async () => mint(user),
    load: async () => {
      const response = await fetch(`${BASE}/v1/me/notifications?limit=100`, {
        headers: { Authorization: `Bearer ${mint(user)}` },
      });
      assert.equal(response.status, 200);
      loads.push(await response.json());
      return loads.at(-1);
    },
    backoffCapMs: 500,
    ...options,
  });
  return { client, loads };
}

async function post(events) {
  const response = await fetch(`${BASE}/v1/events`, {
    method: "POST",
    headers: { Authorization: `Bearer ${SERVICE_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify(events),
  });
  assert.equal(response.status, 202, await response.text());
}

function like(n, owner) {
  const at = new Date(Date.UTC(2026, 0, 1, 12, 0, n)).toISOString();
  return { type: "like", id: `${owner}-${n}`, actor: "fan", post: `p-${n}`, owner, occurred_at: at };
}

function until(test) {
  let resolve;
  const reached = new Promise((r) => { resolve = r; });
  const timeout = setTimeout(() => resolve("timeout"), WAIT_MS);
  return {
    onChange: (inbox) => { if (test(inbox)) { clearTimeout(timeout); resolve("ok"); } },
    reached,
  };
}

async function waitLive(client) {
  const deadline = Date.now() + WAIT_MS;
  while (!client.live) {
    assert.ok(Date.now() < deadline, "never went live");
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("loads, then follows live changes with their cursors", async () => {
  const seen = until((inbox) => inbox.unread === 2);
  const { client, loads } = clientOf("js-ann", { onChange: seen.onChange });
  const running = client.run();
  await waitLive(client);
  await post([like(1, "js-ann"), like(2, "js-ann")]);
  assert.equal(await seen.reached, "ok");
  assert.equal(loads.length, 1);
  assert.equal(client.inbox.groups.size, 2);
  assert.match(client.cursor, /./);
  client.stop();
  await running;
});

test("a cursor that cannot be resumed makes it reload, then continue", async () => {
  await post([like(1, "js-ben")]);
  const seen = until((inbox) => inbox.groups.size === 2);
  let refetches = 0;
  const { client, loads } = clientOf("js-ben", { onChange: seen.onChange, onRefetch: () => { refetches += 1; } });
  const load = client.load;
  // the first load's cursor is of another epoch (as after a Redis that lost its data)
  client.load = async () => ({ ...(await load()), cursor: loads.length ? "someotherepoch.1-0" : undefined });
  const running = client.run();
  await waitLive(client);
  assert.equal(loads.length, 2); // the first load, then the refetch's
  assert.equal(refetches, 1);
  await post([like(2, "js-ben")]);
  assert.equal(await seen.reached, "ok");
  client.stop();
  await running;
});

test("a client started with a saved cursor loads its inbox first", async () => {
  await post([like(1, "js-eve"), like(2, "js-eve")]);
  const storage = memoryStorage();
  const first = clientOf("js-eve", { storage }).client;
  const firstRun = first.run();
  await waitLive(first);
  first.stop();
  await firstRun;
  await post([like(3, "js-eve")]);
  const seen = until((inbox) => inbox.groups.size === 3);
  const { client, loads } = clientOf("js-eve", { storage, onChange: seen.onChange }); // a page reload
  const running = client.run();
  assert.equal(await seen.reached, "ok");
  assert.equal(loads.length, 1);
  client.stop();
  await running;
});

test("a token source that fails at a refresh is retried, never an unhandled rejection", async () => {
  let calls = 0;
  const seen = until((inbox) => inbox.unread === 1);
  const { client } = clientOf("js-fay", {
    token: async () => {
      calls += 1;
      if (calls === 2) throw new Error("token source down");
      return mint("js-fay", 3);
    },
    refreshMarginS: 1.5,
    onChange: seen.onChange,
  });
  const running = client.run();
  await waitLive(client);
  while (calls < 3) await new Promise((r) => setTimeout(r, 50)); // refreshed after the failure
  await post([like(1, "js-fay")]);
  assert.equal(await seen.reached, "ok");
  client.stop();
  await running;
});

test("a slow consumer is closed 4504 and resumes from its cursor", async () => {
  const seen = until((inbox) => inbox.groups.size === 40);
  const { client } = clientOf("js-cy", { onChange: seen.onChange });
  const running = client.run();
  await waitLive(client);
  await post(Array.from({ length: 40 }, (_, n) => like(n, "js-cy")));
  assert.equal(await seen.reached, "ok");
  assert.ok(client.closes.includes(4504), `closes: ${client.closes}`);
  assert.equal(client.inbox.unread, 40);
  client.stop();
  await running;
});

test("the token is refreshed before it expires", async () => {
  const expiries = [];
  let outlived;
  const firstExpired = new Promise((r) => { outlived = r; });
  const seen = until((inbox) => inbox.unread === 1);
  const { client } = clientOf("js-dee", {
    token: async () => {
      const token = mint("js-dee", 3);
      expiries.push(JSON.parse(Buffer.from(token.split(".")[1], "base64url")).exp);
      if (expiries.at(-1) >= expiries[0] + 4) outlived();
      return token;
    },
    refreshMarginS: 1.5,
    onChange: seen.onChange,
  });
  const running = client.run();
  await waitLive(client);
  await firstExpired; // the session outlived its first token by more than a second
  await post([like(1, "js-dee")]);
  assert.equal(await seen.reached, "ok");
  assert.deepEqual(client.closes, []); // never closed 4419
  client.stop();
  await running;
});

test("a bad token stops it for good", async () => {
  const client = new InboxClient({
    url: WS,
    token: async () => mint("js-eve", 600, "x".repeat(40)),
    load: async () => ({ groups: [], unread: 0, cursor: "", next: null }),
  });
  await assert.rejects(client.run(), (error) => error instanceof ClientStopped && error.code === 4401);
  assert.deepEqual(client.closes, [4401]);
});
