export interface Group {
  id: string;
  verb: string;
  actors: string[];
  count: number;
  first_at: number;
  last_at: number;
  read: boolean;
  post?: string;
  comment?: string;
  text?: string;
}

export interface InboxPage {
  groups: Group[];
  unread: number;
  /** groups active after the seen mark: the badge */
  unseen: number;
  /** the seen mark (ms; 0: never marked) */
  seen_at: number;
  /** opaque: where the WebSocket resumes from */
  cursor: string;
  next: string | null;
}

/** a post of the home feed (GET /v1/me/feed, a feed change's `add`) */
export interface Post {
  id: string;
  author: string;
  kind: "text" | "photo" | "video" | "link";
  text: string;
  visibility: "public" | "followers";
  /** its time (ms) */
  at: number;
}

/** a group created or changed; live, with the groups the inbox cap dropped for it */
export interface Upsert {
  op: "upsert";
  group: Group;
  unread: number;
  unseen: number;
  dropped?: string[];
}

/** a group emptied by undos, retracted, or dropped by the inbox cap */
export interface Remove {
  op: "remove";
  id: string;
  unread: number;
  unseen: number;
}

/** groups marked read: `groups` (their ids) or `all` */
export interface Read {
  op: "read";
  unread: number;
  unseen: number;
  groups?: string[];
  all?: boolean;
}

/** the inbox marked seen up to `seen_at` (ms), on this or another device */
export interface Seen {
  op: "seen";
  seen_at: number;
  unread: number;
  unseen: number;
}

/** the `change` of a WebSocket `change` frame */
export type InboxChange = Upsert | Remove | Read | Seen;

export interface FeedAdd {
  op: "add";
  post: Post;
}

export interface FeedRemove {
  op: "remove";
  author: string;
  id: string;
}

/** the `change` of a WebSocket `feed` frame */
export type FeedChange = FeedAdd | FeedRemove;

export interface CursorStorage {
  get(): string | null;
  set(cursor: string): void;
}

export const FATAL_CLOSES: Set<number>;
export function memoryStorage(initial?: string | null): CursorStorage;
/** what localStorageCursor needs of a Storage (a browser's localStorage by default) */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}
export function localStorageCursor(key: string, storage?: KeyValueStorage): CursorStorage;
export function expiresAt(token: string): number | null;

export class ClientStopped extends Error {
  constructor(code: number, reason: string);
  code: number;
  reason: string;
}

export class Inbox {
  groups: Map<string, Group>;
  unread: number;
  unseen: number;
  /** the seen mark (ms; 0: never marked): groups active after it are new */
  seenAt: number;
  load(page: InboxPage): void;
  apply(change: InboxChange): void;
}

export interface InboxClientOptions {
  url: string;
  /** a fresh token of the same user, each call */
  token: () => Promise<string>;
  /** the inbox over REST: GET /v1/me/notifications; for the whole inbox, every page (follow
   * `next`, concatenate `groups`) with the first page's `cursor` and counts */
  load: () => Promise<InboxPage>;
  storage?: CursorStorage;
  onChange?: (inbox: Inbox) => void;
  /** each home-feed change */
  onFeed?: (change: FeedChange) => void;
  /** after a `refetch` (the cursor could not be resumed) reloaded the inbox: reload the home feed here */
  onRefetch?: () => void;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  refreshMarginS?: number;
  /** the WebSocket class (the platform's by default; Node 20 needs --experimental-websocket) */
  WebSocket?: new (url: string) => unknown;
}

export class InboxClient {
  constructor(options: InboxClientOptions);
  readonly inbox: Inbox;
  readonly cursor: string | null;
  /** every close code seen, in order */
  readonly closes: number[];
  readonly live: boolean;
  /** until stop(); rejects with ClientStopped on 4400, 4401, 4403 */
  run(): Promise<void>;
  stop(): void;
}
