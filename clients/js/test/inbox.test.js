// The client's inbox model alone (no server): changes applied in order.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Inbox } from "../notifier-client.js";

const group = (id) => ({ id, verb: "like", actors: ["a"], count: 1, first_at: 1, last_at: 1, read: false });

test("an upsert that pushed groups past the inbox cap removes what it dropped", () => {
  const inbox = new Inbox();
  inbox.load({ groups: [group("like:p2:0"), group("like:p1:0")], unread: 2, cursor: "e.2-9", next: null });
  inbox.apply({ op: "upsert", unread: 2, group: group("like:p3:0"), dropped: ["like:p1:0"] });
  assert.deepEqual([...inbox.groups.keys()].sort(), ["like:p2:0", "like:p3:0"]);
  assert.equal(inbox.unread, 2);
  inbox.apply({ op: "upsert", unread: 3, group: group("like:p4:0") });
  assert.equal(inbox.groups.size, 3);
});

test("the seen mark comes with the page and with a seen change from any device", () => {
  const inbox = new Inbox();
  assert.equal(inbox.seenAt, 0);
  inbox.load({ groups: [group("like:p1:0")], unread: 1, unseen: 1, seen_at: 500, cursor: "e.1-9", next: null });
  assert.equal(inbox.seenAt, 500);
  inbox.apply({ op: "seen", seen_at: 900, unread: 1, unseen: 0 });
  assert.deepEqual([inbox.seenAt, inbox.unseen], [900, 0]);
});
