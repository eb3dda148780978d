// A browser and Node client of a user's live inbox (no dependencies): loads it over REST, follows
// it over the WebSocket keeping the cursor, resumes after any disconnect with jittered backoff,
// reloads on `refetch`, refreshes the token before it expires, and stops for good on the close
// codes after which retrying cannot help (4400, 4401, 4403). Cursors are opaque strings.

export const FATAL_CLOSES = new Set([4400, 4401, 4403]);
const MIN_REFRESH_MS = 500; // the gateway limits client frames (4429)

export function memoryStorage(initial = null) {
  let cursor = initial;
  return { get: () => cursor, set: (value) => { cursor = value; } };
}

export function localStorageCursor(key, storage = globalThis.localStorage) {
  return { get: () => storage.getItem(key), set: (value) => storage.setItem(key, value) };
}

export function expiresAt(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

export class ClientStopped extends Error {
  constructor(code, reason) {
    super(`closed ${code} ${reason}`);
    this.code = code;
    this.reason = reason;
  }
}

export class Inbox {
  constructor() {
    this.groups = new Map();
    this.unread = 0;
    this.unseen = 0;
    this.seenAt = 0; // the seen mark (ms; 0: never marked): groups active after it are new
  }

  load(page) {
    this.groups = new Map(page.groups.map((g) => [g.id, g]));
    this.unread = page.unread;
    this.unseen = page.unseen ?? 0;
    this.seenAt = page.seen_at ?? 0;
  }

  apply(change) {
    if (change.op === "upsert") {
      this.groups.set(change.group.id, change.group);
      for (const id of change.dropped ?? []) this.groups.delete(id); // the inbox cap made room
    } else if (change.op === "remove") this.groups.delete(change.id);
    else if (change.op === "read") {
      const ids = change.all ? [...this.groups.keys()] : change.groups ?? [];
      for (const id of ids) {
        const group = this.groups.get(id);
        if (group) this.groups.set(id, { ...group, read: true });
      }
    }
    else if (change.op === "seen") this.seenAt = change.seen_at;
    if (typeof change.unread === "number") this.unread = change.unread;
    if (typeof change.unseen === "number") this.unseen = change.unseen;
  }
}

export class InboxClient {
  constructor({
    url,
    token,
    load,
    storage = memoryStorage(),
    onChange = () => {},
    onFeed = () => {},
    onRefetch = () => {},
    backoffBaseMs = 250,
    backoffCapMs = 10_000,
    refreshMarginS = 30,
    WebSocket: Socket = globalThis.WebSocket,
  }) {
    Object.assign(this, { url, token, load, storage, onChange, onFeed, onRefetch, backoffBaseMs, backoffCapMs });
    this.refreshMarginMs = refreshMarginS * 1000;
    this.Socket = Socket;
    this.inbox = new Inbox();
    this.loaded = false; // this instance's inbox, loaded once: a stored cursor alone holds no groups
    this.closes = [];
    this.live = false;
    this.stopped = false;
    this.wake = null;
  }

  get cursor() {
    return this.storage.get();
  }

  stop() {
    this.stopped = true;
    this.socket?.close(1000);
    this.wake?.();
  }

  async run() {
    let failures = 0;
    while (!this.stopped) {
      failures = (await this.attempt()) ? 0 : failures + 1;
      if (this.stopped) return;
      const delay = Math.random() * Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** failures);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
    }
  }

  // a failed load (the caller's code: REST down, token source down) is retried like a
  // disconnect; the cursor is unchanged, so the gateway asks for the refetch again
  async attempt() {
    try {
      if (!this.loaded || this.cursor === null || this.cursor === undefined) await this.reload();
      if (this.stopped) return false; // stopped while loading: no session
      return await this.session();
    } catch (error) {
      if (error instanceof ClientStopped) throw error;
      this.socket?.close(1000);
      return false;
    }
  }

  async reload() {
    const page = await this.load();
    this.inbox.load(page);
    this.storage.set(page.cursor);
    this.loaded = true;
    this.onChange(this.inbox);
  }

  async session() {
    let token;
    try {
      token = await this.token();
    } catch (error) {
      return false; // the token source is unreachable: back off and try again
    }
    if (this.stopped) return false; // stopped while the token came: stop() had no socket to close
    let wentLive = false;
    let refresh = null;
    const socket = new this.Socket(this.url);
    this.socket = socket;
    const frames = [];
    let wakeReader = null;
    let closed = null;
    socket.onmessage = (event) => { frames.push(JSON.parse(event.data)); wakeReader?.(); };
    socket.onclose = (event) => { closed = event; wakeReader?.(); };
    // a refused connection fires only `error` in some runtimes (Node 20's undici): no `close`
    const failed = () => {
      if (closed) return;
      closed = { code: 1006, reason: "connection failed" };
      wakeReader?.();
    };
    socket.onerror = () => (socket.readyState === 1 ? setTimeout(failed, 1000) : failed());
    socket.onopen = () => {
      const auth = { type: "auth", token };
      if (this.cursor) auth.cursor = this.cursor;
      socket.send(JSON.stringify(auth));
      refresh = this.scheduleRefresh(socket, token);
    };
    // frames are handled one at a time, in order (a refetch's reload completes before the next)
    try {
      while (true) {
        if (frames.length) {
          wentLive = (await this.handle(frames.shift())) || wentLive;
          continue;
        }
        if (closed) break;
        await new Promise((resolve) => { wakeReader = resolve; });
        wakeReader = null;
      }
    } finally {
      clearTimeout(refresh?.timer);
      if (refresh) refresh.cancelled = true;
      this.live = false;
    }
    if (!this.stopped) {
      this.closes.push(closed.code);
      if (FATAL_CLOSES.has(closed.code)) throw new ClientStopped(closed.code, closed.reason);
    }
    return wentLive;
  }

  scheduleRefresh(socket, token) {
    const state = { timer: null, cancelled: false };
    const plan = (current) => {
      const expiry = expiresAt(current);
      if (expiry === null) return;
      const left = expiry - Date.now();
      const wait = Math.max(MIN_REFRESH_MS, left - this.refreshMarginMs, left / 2);
      state.timer = setTimeout(async () => {
        let fresh;
        try {
          fresh = await this.token();
        } catch (error) {
          // the token source is down: try again soon; past `exp` the gateway closes 4419 and
          // the client reconnects with backoff (never an unhandled rejection)
          if (!state.cancelled && expiry - Date.now() > MIN_REFRESH_MS) plan(current);
          return;
        }
        if (state.cancelled || socket.readyState !== 1) return;
        socket.send(JSON.stringify({ type: "auth", token: fresh }));
        plan(fresh);
      }, wait);
    };
    plan(token);
    return state;
  }

  async handle(frame) {
    if (frame.type === "change") {
      this.inbox.apply(frame.change);
      this.storage.set(frame.cursor);
      this.onChange(this.inbox);
    } else if (frame.type === "feed") {
      // a home-feed change ({op: "add", post} or {op: "remove", author, id}) in the same log
      this.onFeed(frame.change);
      this.storage.set(frame.cursor);
    } else if (frame.type === "refetch") {
      await this.reload();
      this.storage.set(frame.cursor);
      this.onRefetch();
    } else if (frame.type === "ready") {
      this.storage.set(frame.cursor);
      this.live = true;
      return true;
    }
    return false;
  }
}
