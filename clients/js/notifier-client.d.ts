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
  apply(change: Record<string, unknown>): void;
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
  /** each home-feed change: {op: "add", post} or {op: "remove", author, id} */
  onFeed?: (change: Record<string, unknown>) => void;
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
