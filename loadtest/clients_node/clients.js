// The push benchmark's WebSocket clients in Node (`--client-runtime node`): the same sessions
// as loadtest/clients.py (one user per socket, resuming from its cursor after any close), at a
// fraction of the CPU per message, so one core can receive what the gateway under test sends.
// Frames are read as NotifierProtocol.parse (loadtest/protocols.py) reads them; every change
// naming one of our events becomes a receipt (user, seq, receive time in wall-clock ns), and all
// receipts go back to the Python ledger, which checks them exactly (loadtest/nodeclients.py).
//
// stdin: the plan (one JSON line), then ["start", T0_NS] and ["stop"] lines.
// stdout: messages, each `u32 size, u32 head size, head JSON, users i32[n], seqs i32[n],
// received_ns i64[n]` (little-endian), the head {kind, ..., n}: "ready" while connecting,
// "stats" each second after start, "done" once every socket is closed after stop.
"use strict";

const readline = require("node:readline");
const { Socket } = require("./wsocket");

const STATS_INTERVAL_MS = 1000;
const READY_INTERVAL_MS = 250;
const CLOSE_TIMEOUT_MS = 5000;

const wallAtStart = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
const hrAtStart = process.hrtime.bigint();
const nowNs = () => wallAtStart + (process.hrtime.bigint() - hrAtStart);

class Receipts {
  constructor(capacity = 1 << 16) {
    this.n = 0;
    this.users = new Int32Array(capacity);
    this.seqs = new Int32Array(capacity);
    this.times = new BigInt64Array(capacity);
  }

  add(user, seq, ns) {
    if (this.n === this.users.length) this.grow();
    this.users[this.n] = user;
    this.seqs[this.n] = seq;
    this.times[this.n] = ns;
    this.n += 1;
  }

  grow() {
    const more = (from, Kind) => {
      const to = new Kind(from.length * 2);
      to.set(from);
      return to;
    };
    this.users = more(this.users, Int32Array);
    this.seqs = more(this.seqs, Int32Array);
    this.times = more(this.times, BigInt64Array);
  }

  bytes() {
    const n = this.n;
    return [
      Buffer.from(this.users.buffer, 0, n * 4),
      Buffer.from(this.seqs.buffer, 0, n * 4),
      Buffer.from(this.times.buffer, 0, n * 8),
    ];
  }
}

function eventOfGroup(groupId) {
  // protocols.py event_of_group: comment:RUN.SEQ or mention:RUN.SEQ:ACTOR
  const colon = groupId.indexOf(":");
  const kind = colon < 0 ? groupId : groupId.slice(0, colon);
  const rest = colon < 0 ? "" : groupId.slice(colon + 1);
  if (kind === "comment") return rest;
  if (kind === "mention") return rest.split(":")[0];
  return null;
}

// NotifierProtocol.change's fast path: a plain change frame's cursor and group id by one match of
// the plan's change_pattern (loadtest/protocols.py NOTIFIER_CHANGE, whose syntax JavaScript reads
// alike), a tenth of a JSON.parse; whatever it does not take exactly goes to parseNotifier
function parseChange(pattern, text) {
  const match = pattern.exec(text);
  return match === null ? null : { cursor: match[1], event: eventOfGroup(match[2]) };
}

// NotifierProtocol.parse: {ready, cursor, event, note}
function parseNotifier(text) {
  const frame = JSON.parse(text);
  switch (frame.type) {
    case "change": {
      const change = frame.change;
      const group = change.op === "upsert" ? change.group : undefined;
      if (group === undefined || group === null) return { cursor: frame.cursor, note: `op:${change.op}` };
      const count = group.count === undefined ? 1 : group.count;
      return {
        cursor: frame.cursor,
        event: eventOfGroup(String(group.id === undefined ? "" : group.id)),
        note: count === 1 ? null : "group_count_above_1",
      };
    }
    case "ready":
      return { ready: true, cursor: frame.cursor };
    case "refetch":
      return { cursor: frame.cursor, note: "refetch" };
    case "error":
      return { note: `close:${frame.error}` };
    default:
      return {};
  }
}

class Box {
  constructor(plan) {
    this.plan = plan;
    this.change = new RegExp("^" + plan.change_pattern);
    this.receipts = new Receipts();
    this.received = 0;
    this.connected = 0;
    this.connectUs = [];
    this.counts = Object.create(null);
    this.stopping = false;
    this.inflight = 0; // handshakes under way (at most plan.connect_concurrency)
    this.waiting = []; // sessions waiting for a handshake slot
  }

  count(name, n = 1) {
    this.counts[name] = (this.counts[name] || 0) + n;
  }

  take() {
    const r = this.receipts;
    this.receipts = new Receipts();
    return r;
  }

  admit(session) {
    if (this.inflight < this.plan.connect_concurrency) {
      this.inflight += 1;
      session.open();
    } else {
      this.waiting.push(session);
    }
  }

  release() {
    this.inflight -= 1;
    const next = this.waiting.shift();
    if (next !== undefined && !this.stopping) {
      this.inflight += 1;
      next.open();
    }
  }
}

class Session {
  constructor(box, user, url, token) {
    this.box = box;
    this.user = user;
    this.url = url.replace(/\/+$/, "") + "/v1/ws";
    this.token = token;
    this.cursor = null;
    this.ws = null;
    this.live = false; // after the ready frame
    this.ready = false; // ever
    this.failures = 0;
    this.opened = 0n;
  }

  open() {
    const box = this.box;
    this.opened = process.hrtime.bigint();
    let handshaking = true;
    let failed = false;
    const handshakeDone = () => {
      if (handshaking) {
        handshaking = false;
        box.release();
      }
    };
    const prefix = () => (box.stopping ? "closing" : "error");
    this.ws = new Socket(this.url, {
      onOpen: () => {
        handshakeDone();
        this.failures = 0;
        this.ws.send(JSON.stringify({ type: "auth", token: this.token, cursor: this.cursor }));
      },
      onMessage: (text) => this.received(text),
      onError: (error) => {
        box.count(`${prefix()}:${error.code || error.name}`);
        failed = true;
        this.failures += 1;
      },
      onClose: (code) => this.closed(code, failed, handshakeDone),
    });
  }

  closed(code, failed, handshakeDone) {
    const box = this.box;
    handshakeDone();
    if (!failed && code !== 1000 && code !== 1001) box.count(`${box.stopping ? "closing" : "error"}:close_${code}`);
    if (this.live) box.connected -= 1;
    this.live = false;
    this.ws = null;
    if (box.stopping) {
      box.closed();
      return;
    }
    box.count("reconnects");
    const delayS = Math.min(2.0, 0.05 * 2 ** Math.min(this.failures, 6)) * (0.5 + Math.random() / 2);
    setTimeout(() => box.stopping || box.admit(this), delayS * 1000); // else stop counted it closed
  }

  received(text) {
    const frame = parseChange(this.box.change, text) || parseNotifier(text);
    if (frame.cursor !== undefined && frame.cursor !== null) this.cursor = frame.cursor;
    if (frame.ready) {
      this.live = this.ready = true;
      this.box.connected += 1;
      this.box.connectUs.push(Number((process.hrtime.bigint() - this.opened) / 1000n));
    }
    if (frame.event !== undefined && frame.event !== null) this.receipt(frame.event);
    if (frame.note) this.box.count(frame.note);
  }

  receipt(event) {
    const dot = event.lastIndexOf(".");
    const seq = event.slice(dot + 1);
    if (dot >= 0 && event.slice(0, dot) === this.box.plan.run_id && /^[0-9]+$/.test(seq)) {
      this.box.receipts.add(this.user, Number(seq), nowNs());
      this.box.received += 1;
    } else {
      this.box.count("foreign");
    }
  }
}

function send(head, receipts) {
  const [users, seqs, times] = receipts ? receipts.bytes() : [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)];
  const headBytes = Buffer.from(JSON.stringify({ ...head, n: receipts ? receipts.n : 0 }));
  const sizes = Buffer.alloc(8);
  const size = 4 + headBytes.length + users.length + seqs.length + times.length;
  sizes.writeUInt32LE(size, 0);
  sizes.writeUInt32LE(headBytes.length, 4);
  process.stdout.write(Buffer.concat([sizes, headBytes, users, seqs, times]));
}

function main(plan, commands) {
  const box = new Box(plan);
  const sessions = plan.users.map((u, i) => new Session(box, u, plan.urls[u % plan.urls.length], plan.tokens[i]));
  let open = sessions.length; // sockets not yet closed for good once stopping
  box.closed = () => {
    open -= 1;
    if (open === 0) finish();
  };
  const readyTimer = setInterval(() => {
    send({ kind: "ready", proc: plan.proc, ready: sessions.filter((s) => s.ready).length, counts: box.counts });
  }, READY_INTERVAL_MS);
  let statsTimer = null;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(statsTimer);
    const summary = { received: box.received, connected: box.connected, counts: box.counts };
    send({ kind: "done", proc: plan.proc, summary, connect_us: box.connectUs }, box.take());
    process.stdout.end(() => process.exit(0));
  };
  for (const session of sessions) box.admit(session);

  commands.on("line", (line) => {
    const command = JSON.parse(line);
    if (command[0] === "start") {
      clearInterval(readyTimer);
      statsTimer = setInterval(() => {
        const stats = { received: box.received, connected: box.connected, ...box.counts };
        send({ kind: "stats", proc: plan.proc, stats }, box.take());
      }, STATS_INTERVAL_MS);
    } else if (command[0] === "stop") {
      clearInterval(readyTimer);
      box.stopping = true;
      box.waiting.length = 0;
      for (const session of sessions) {
        if (session.ws === null) box.closed(); // between attempts: its timer sees stopping
        else session.ws.close();
      }
      setTimeout(() => {
        for (const session of sessions) if (session.ws !== null) session.ws.terminate();
        setTimeout(finish, 1000);
      }, CLOSE_TIMEOUT_MS).unref();
    }
  });
  commands.on("close", () => process.exit(0)); // the parent is gone
}

const commands = readline.createInterface({ input: process.stdin });
commands.once("line", (line) => main(JSON.parse(line), commands));
