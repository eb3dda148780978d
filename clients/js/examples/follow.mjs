// node --experimental-websocket examples/follow.mjs API_URL USER [WS_URL]: follows USER's inbox
// (WebSocket at WS_URL, default the API's address: `up` serves both) and prints
// one JSON line per state (`posts` in the inbox, `unread`, `loads`, `closes`). The token comes
// from the JWT secret in CLIENT_JWT_SECRET (a real app asks its backend for one).
import { createHmac } from "node:crypto";

import { InboxClient } from "../notifier-client.js";

const [base, user, wsBase = base.replace("http://", "ws://")] = process.argv.slice(2);
const secret = process.env.CLIENT_JWT_SECRET;
const b64 = (data) => Buffer.from(data).toString("base64url");

function mint() {
  const now = Math.floor(Date.now() / 1000);
  const head = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64(JSON.stringify({ sub: user, aud: "notifier", iat: now, exp: now + 600 }));
  return `${head}.${body}.${createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url")}`;
}

let loads = 0;
const client = new InboxClient({
  url: `${wsBase}/v1/ws`,
  token: async () => mint(),
  load: async () => {
    // the whole inbox: every page, resumed from the first one's cursor
    loads += 1;
    const get = async (before) => {
      const query = before ? `&before=${encodeURIComponent(before)}` : "";
      const response = await fetch(`${base}/v1/me/notifications?limit=100${query}`, {
        headers: { Authorization: `Bearer ${mint()}` },
      });
      if (!response.ok) throw new Error(`load answered ${response.status}`);
      return response.json();
    };
    const first = await get(null);
    for (let page = first; page.next; ) {
      page = await get(page.next);
      first.groups.push(...page.groups);
    }
    return first;
  },
  backoffCapMs: 1000,
  onChange: (inbox) => {
    const posts = [...inbox.groups.values()].map((g) => g.post).sort();
    console.log(JSON.stringify({ posts, unread: inbox.unread, loads, closes: client.closes }));
  },
});
process.on("SIGTERM", () => client.stop());
await client.run();
