-- Shared head of every inbox script. A user's keys (hash tag {u:ID}), USER_KEYS of them
-- (schemas/layouts.py):
--   1 items (the item registers, and the user's state under `#`),
--   2 inbox (list of group records, newest first), 3 read marks, 4 change log (list)
-- ARGV 1..6: actors prefix, channel (of the user of KEYS 1..4; apply gives them per item),
--            epoch candidate, max groups, max change-log entries, actors shown per group
--            (0: as the last writer); the script's own ARGV follow.
local call = redis.call
local K_ITEMS, K_INBOX, K_MARKS, K_LOG, A_PREFIX, CHANNEL
-- What the call knows of the user's inbox list, kept in step with its own writes (see head()),
-- and their seen mark (see unseen()).
local HEAD, SIZE, SEEN
-- '@' .. the acceptance time (ms) of the event being applied (apply.lua sets it per item), or '':
-- it rides on the published cursor ("EPOCH.N-0@MS PAYLOAD") for the gateway's push latency
local TAG = ''
-- Work on the user whose keys follow keys[k] (KEYS, or on a cluster ARGV: lua/sharded_keys.lua),
-- with that user's actors prefix and channel.
local function use(keys, k, prefix, channel)
  K_ITEMS, K_INBOX, K_MARKS, K_LOG = keys[k + 1], keys[k + 2], keys[k + 3], keys[k + 4]
  A_PREFIX, CHANNEL = prefix, channel
  HEAD, SIZE, SEEN = nil, nil, nil
end
use(KEYS, 0, ARGV[1], ARGV[2])
local EPOCH_NEW = ARGV[3]
local MAX_GROUPS, MAX_CHANGES, SHOWN = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local BASE = 6
-- Numbers given to redis.call are formatted by Redis with %.17g (a few thousand instructions
-- each): the hot paths pass strings.
-- The log is trimmed back to MAX_CHANGES once it holds a LOG_SLACK-th more (schemas/layouts.py
-- trim_past): one LTRIM per MAX_CHANGES / LOG_SLACK changes of a user at the bound, not one per
-- change.
local TRIM_PAST = MAX_CHANGES + math.floor(MAX_CHANGES / LOG_SLACK)

-- The layouts' constants (MS_OFFSET, CHECK_MIN, STATE_FORMAT...) come from schemas/layouts.py,
-- injected ahead of this file by feeds/scripts.py.
-- Big-endian bytes of a non-negative integer, and back (plain Lua: for the in-memory fake Redis,
-- which has no `struct`, and for what runs once a call).
local function be_bytes(n, k)
  local b = {}
  for i = k, 1, -1 do
    b[i] = n % 256
    n = (n - b[i]) / 256
  end
  return string.char(unpack(b))
end
local function be_number(raw, from, to)
  local n = 0
  for i = from, to do n = n * 256 + raw:byte(i) end
  return n
end

-- Times (ms) are stored as MS_BYTES big-endian bytes of t + MS_OFFSET (every date an event can
-- carry, exact in a Lua number).
local pack_ms, unpack_ms
if struct then
  local format = '>I' .. MS_BYTES
  pack_ms = function(t) return struct.pack(format, t + MS_OFFSET) end
  unpack_ms = function(s) return struct.unpack(format, s) - MS_OFFSET end
else
  pack_ms = function(t) return be_bytes(t + MS_OFFSET, MS_BYTES) end
  unpack_ms = function(s) return be_number(s, 1, MS_BYTES) - MS_OFFSET end
end
-- The watermark of a user whose registers were never trimmed (lua/trim.lua): below every time.
local NO_HORIZON = pack_ms(-MS_OFFSET)

-- Numbers become text through string.format('%d'): a Lua number's own conversion (%.14g) costs
-- twice as much, and is wrong past 14 digits. Remembered for the call: most repeat (counts, a
-- group's times), and a lookup costs a tenth of a format.
local INTS = {}
local function int(n)
  local s = INTS[n]
  if not s then
    s = string.format('%d', n)
    INTS[n] = s
  end
  return s
end

-- A group id is VERB:REST; records and log entries abbreviate the verb to its first letter.
local VERBS = {l = 'like', f = 'follow', c = 'comment', m = 'mention'}
local SHORT = {}  -- memo: a call shortens a group's id several times
local function short(gid)
  local s = SHORT[gid]
  if not s then
    s = gid:sub(1, 1) .. gid:sub(gid:find(':', 1, true) + 1)
    SHORT[gid] = s
  end
  return s
end
local function long(s) return VERBS[s:sub(1, 1)] .. ':' .. s:sub(2) end

-- A group's record in the inbox list: its last activity time (7 bytes), then
--   likes and follows (any number of actors, kept in a sorted set per group): the short id;
--   comments and mentions (one actor): short id '|' actor '|' post '|' text, where a mention in
--   a post (group id mention:POST~ACTOR, MENTION_IN_POST) is 'p' alone and the comment of the others is in its id.
-- Decoded, a record is a group: {t, gid, verb, single, actor, post, comment, text} (and, for
-- a like or follow group, `actors`: see actors_of, if already read).
local function encode(g)
  if not g.single then return pack_ms(g.t) .. short(g.gid) end
  local head = g.comment and short(g.gid) or 'p'
  return pack_ms(g.t) .. head .. '|' .. g.actor .. '|' .. g.post .. '|' .. g.text
end

-- A like or follow group; `lean`: without the post of a like (view() finds it if needed).
local function multi(t, gid, lean)
  local g = {t = t, gid = gid, verb = VERBS[gid:sub(1, 1)]}
  if g.verb == 'like' and not lean then g.post = gid:match('^like:(.*):') end  -- like:POST:WINDOW
  return g
end

local function decode(rec)
  local t, bar = unpack_ms(rec), rec:find('|', 8, true)  -- the time's bytes may hold a '|'
  if not bar then return multi(t, long(rec:sub(8))) end
  local s = rec:sub(8, bar - 1)
  local actor, post, text = rec:match('^([^|]*)|([^|]*)|(.*)$', bar + 1)
  local g = {t = t, single = true, actor = actor, post = post, text = text, verb = 'mention'}
  if s == 'p' then
    g.gid = 'mention:' .. post .. MENTION_IN_POST .. actor
  else
    g.verb, g.gid, g.comment = VERBS[s:sub(1, 1)], long(s), s:sub(2)
  end
  return g
end

-- The inbox list's newest record (false: the list is empty) and its length, read once a user
-- and then kept in step with every write to it (apply's, through these functions and insert).
local function head()
  if HEAD == nil then HEAD = call('LINDEX', K_INBOX, '0') end
  return HEAD
end
local function size()
  if not SIZE then SIZE = call('LLEN', K_INBOX) end
  return SIZE
end
-- LPUSH; LSET of the newest record; LREM of one record; RPOP.
local function lpush(rec)
  HEAD, SIZE = rec, call('LPUSH', K_INBOX, rec)
  return SIZE
end
local function set_head(rec)
  call('LSET', K_INBOX, '0', rec)
  HEAD = rec
end
local function lrem(rec)
  if call('LREM', K_INBOX, '1', rec) == 0 then return end
  if rec == HEAD then HEAD = nil end
  if SIZE then SIZE = SIZE - 1 end
end
local function rpop()
  local rec = call('RPOP', K_INBOX)
  if rec == HEAD then HEAD = nil end
  if SIZE then SIZE = SIZE - 1 end
  return rec
end

-- The inbox is ordered newest first by (time, group id), as ZREVRANGE orders a sorted set.
local function newer(t1, g1, t2, g2) return t1 > t2 or (t1 == t2 and g1 > g2) end

-- Index of the first record that is not newer than (t, gid) (or, `past`, older than it).
local function seek(t, gid, past)
  local lo, hi = 0, size()
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local rec = call('LINDEX', K_INBOX, mid)
    local rt, ahead = unpack_ms(rec), nil
    if rt ~= t then
      ahead = rt > t
    else  -- only a tie needs the group id
      local rg = decode(rec).gid
      ahead = rg > gid or (past and rg == gid)
    end
    if ahead then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- The live record of group `gid` last active at `t` and its group, or nil (gone or dropped).
local function find(t, gid)
  local rec = call('LINDEX', K_INBOX, seek(t, gid))
  if rec then
    local g = decode(rec)
    if g.t == t and g.gid == gid then return rec, g end
  end
end

-- Put a group's record in its place, replacing one with the same time and id (a retry after a
-- failed script must not duplicate it); returns the inbox size. New activity usually goes on top.
local function insert(g)
  local rec, t, gid = encode(g), g.t, g.gid
  local here = head()
  if not here or t > unpack_ms(here) then return lpush(rec) end
  local at, h = 0, decode(here)
  if newer(t, gid, h.t, h.gid) then return lpush(rec) end
  if not (h.t == t and h.gid == gid) then
    at = seek(t, gid)
    here = call('LINDEX', K_INBOX, at)
    if not here then  -- older than every record: the newest stays
      SIZE = call('RPUSH', K_INBOX, rec)
      return SIZE
    end
    h = decode(here)
  end
  if h.t == t and h.gid == gid then
    if at == 0 then set_head(rec) else call('LSET', K_INBOX, at, rec) end
    return size()
  end
  -- records are unique: `here` is at `at`, after the newest
  SIZE = call('LINSERT', K_INBOX, 'BEFORE', here, rec)
  return SIZE
end

-- The user's state, in the items hash under STATE_FIELD (schemas/layouts.py): the change log's
-- last change number, the unread count (signed), the writers' actors per group (for the readers
-- that are not told it), big-endian, the read marks' summary (`all`: the read-all mark, `groups`:
-- whether some group may have a mark of its own; all nil: unknown, see read_all), then the log's
-- epoch; or, as written before, without the summary, or the text "EPOCH SEQ UNREAD SHOWN" (its
-- first byte is the epoch's, never 0). Read once per script, with the register of `item` if
-- given (every script starts so), and written back by save(). Binary, because parsing and
-- formatting the text cost more than the commands around it.
local STATE_AT, UNREAD_SPAN = STATE_SEQ_BYTES + STATE_UNREAD_BYTES, 2 ^ (8 * STATE_UNREAD_BYTES)
local MARKS_AT = STATE_AT + 2  -- the summary's first byte
local EPOCH_AT = MARKS_AT + 1 + MS_BYTES  -- the epoch's, after a summary
local function marks_byte(s) return s.groups and MARKS_GROUPS or MARKS_NONE end
local pack_state, unpack_state
if struct then
  pack_state = function(s)
    if s.all == nil then return struct.pack(STATE_FORMAT, s.seq, s.unread, SHOWN) .. s.epoch end
    return struct.pack(STATE_MARKS_FORMAT, s.seq, s.unread, SHOWN, marks_byte(s), s.all + MS_OFFSET) .. s.epoch
  end
  unpack_state = function(raw)
    local b = raw:byte(MARKS_AT)
    if b == MARKS_NONE or b == MARKS_GROUPS then
      local seq, unread, shown, _, all = struct.unpack(STATE_MARKS_FORMAT, raw)
      return raw:sub(EPOCH_AT), seq, unread, shown, all - MS_OFFSET, b == MARKS_GROUPS
    end
    local seq, unread, shown = struct.unpack(STATE_FORMAT, raw)
    return raw:sub(MARKS_AT), seq, unread, shown
  end
else
  pack_state = function(s)
    local marks = s.all == nil and '' or string.char(marks_byte(s)) .. pack_ms(s.all)
    return be_bytes(s.seq, STATE_SEQ_BYTES) .. be_bytes(s.unread % UNREAD_SPAN, STATE_UNREAD_BYTES)
      .. string.char(SHOWN) .. marks .. s.epoch
  end
  unpack_state = function(raw)
    local unread = be_number(raw, STATE_SEQ_BYTES + 1, STATE_AT)
    if unread >= UNREAD_SPAN / 2 then unread = unread - UNREAD_SPAN end
    local seq, shown, b = be_number(raw, 1, STATE_SEQ_BYTES), raw:byte(STATE_AT + 1), raw:byte(MARKS_AT)
    if b == MARKS_NONE or b == MARKS_GROUPS then
      return raw:sub(EPOCH_AT), seq, unread, shown, unpack_ms(raw:sub(MARKS_AT + 1)), b == MARKS_GROUPS
    end
    return raw:sub(MARKS_AT), seq, unread, shown
  end
end
local S
-- state(item, extra): also the register of `item` and the hash's field `extra` (apply: the horizon).
local function state(item, extra)
  local r
  if extra then
    r = call('HMGET', K_ITEMS, item, STATE_FIELD, extra)
  else
    r = item and call('HMGET', K_ITEMS, item, STATE_FIELD) or {false, call('HGET', K_ITEMS, STATE_FIELD)}
  end
  local raw, epoch, seq, unread, shown, all, groups = r[2], nil, 0, 0, nil, nil, nil
  if raw and raw:byte(1) == 0 then
    epoch, seq, unread, shown, all, groups = unpack_state(raw)
  elseif raw then
    epoch, seq, unread, shown = raw:match('^(%S+) (%d+) (%d+) (%d+)$')
    seq, unread, shown = tonumber(seq), tonumber(unread), tonumber(shown)
  end
  S = {epoch = epoch, seq = seq, unread = unread, all = all, groups = groups, dirty = false}
  -- a new user's watermark goes in right after their state, empty (NO_HORIZON): a field found
  -- near the front of a listpack-encoded hash costs its lookup a few entries, a missing one a
  -- scan of every register
  S.no_horizon = extra == HORIZON_FIELD and not raw and not r[3]
  S.mark = r[3]  -- the field `<` (apply: see below_floor)
  if SHOWN == 0 then SHOWN = shown or 3 end
  return S, r[1], r[3]
end
-- Write the state back if it changed, with the register of `item` if given, and the field `<`
-- if the cap's floor rose (enforce_cap: always with a change, so with the state).
local function save(item, register)
  local packed = S.dirty and pack_state(S)
  S.dirty = false
  local mark = S.raised and S.mark
  S.raised = false
  if packed and S.no_horizon then
    S.no_horizon = false
    mark = mark or NO_HORIZON
  end
  if mark then
    packed = packed or pack_state(S)
    if item then
      call('HSET', K_ITEMS, item, register, STATE_FIELD, packed, HORIZON_FIELD, mark)
    else
      call('HSET', K_ITEMS, STATE_FIELD, packed, HORIZON_FIELD, mark)
    end
  elseif packed and item then
    call('HSET', K_ITEMS, item, register, STATE_FIELD, packed)
  elseif packed then
    call('HSET', K_ITEMS, STATE_FIELD, packed)
  elseif item then
    call('HSET', K_ITEMS, item, register)
  end
end
local function add_unread(d)
  if d ~= 0 then S.unread, S.dirty = S.unread + d, true end
end

-- The read-all mark (0: none), from the state's summary of the read marks; a state without one
-- learns it from the hash (its `*`, and whether it holds more than `*` and `seen`: group marks),
-- to be saved with the state.
local function read_all()
  local s = S
  if s.all == nil then
    local n = call('HLEN', K_MARKS)
    s.all, s.groups = 0, false
    if n > 0 then
      local m = call('HMGET', K_MARKS, '*', 'seen')
      s.all, s.groups = tonumber(m[1] or '0'), n > (m[1] and 1 or 0) + (m[2] and 1 or 0)
    end
    s.dirty = s.dirty or s.epoch ~= nil
  end
  return s.all
end

-- A group is unread while its time is after the user's read mark for it and the read-all mark.
-- Only a user who marked some group read on its own has the hash read (most never do).
-- A mention in a post was read under `mention:POST:ACTOR` before its group id took
-- MENTION_IN_POST (2026-12-07): until those groups have left the inboxes, a group's own read
-- mark is the later of the marks under both ids (and both go when it leaves).
local function legacy_gid(gid)
  local at = gid:find(MENTION_IN_POST, 1, true)
  return at and gid:sub(1, at - 1) .. ':' .. gid:sub(at + 1) or nil
end

-- The read-all mark and each group's own (0: none) of `gids`, in one HMGET.
local function marks_of(gids)
  local fields, legacy = {'*'}, {}
  for i, gid in ipairs(gids) do fields[i + 1] = gid end
  for i, gid in ipairs(gids) do
    local old = legacy_gid(gid)
    if old then
      fields[#fields + 1] = old
      legacy[i] = #fields
    end
  end
  local got = call('HMGET', K_MARKS, unpack(fields))
  local out = {}
  for i = 1, #gids do
    out[i] = math.max(tonumber(got[i + 1] or '0'), tonumber(legacy[i] and got[legacy[i]] or '0'))
  end
  return tonumber(got[1] or '0'), out
end

local function mark(gid)
  local all = read_all()
  if not S.groups then return all end
  local _, own = marks_of({gid})
  return math.max(all, own[1])
end

-- JSON is assembled here rather than by cjson.encode of a table (several times cheaper), and
-- every string in it goes through jstr: valid JSON whatever an id or a text holds. cjson.encode
-- of a string (C) costs less than a Lua pattern's search for what needs escaping, and gives what
-- that did (the string in quotes) unless it holds a '/', which cjson escapes and we never did.
-- Remembered for the call: ids repeat from change to change.
local JSON = {}
local function jstr(s)
  local j = JSON[s]
  if not j then
    if not s:find('/', 1, true) then
      j = cjson.encode(s)
    else
      j = s:find('[%c"\\]') and cjson.encode(s) or '"' .. s .. '"'
    end
    JSON[s] = j
  end
  return j
end

-- A like or follow group's actors are a sorted set by time whose members are TIME (7 bytes) and
-- ACTOR: times read back without Redis formatting scores as text, nor Lua parsing them.
-- actors_of: how many, the oldest member, and the newest members (the SHOWN ones, and at least
-- two), newest first. A small set (most are) is read whole in one call.
local SMALL, SMALL_LAST = 16, '15'
local function actors_of(gid)
  local akey, newest = A_PREFIX .. gid, math.max(SHOWN, 2)
  local all = call('ZRANGE', akey, '0', SMALL_LAST)
  local a = {count = #all, first = all[1], top = {}}
  if #all == SMALL then
    a.count = call('ZCARD', akey)
    if a.count > SMALL then all = call('ZRANGE', akey, -newest, -1) end
  end
  for i = #all, math.max(1, #all - newest + 1), -1 do a.top[#a.top + 1] = all[i] end
  return a
end

-- The client's view of a group, as JSON (REST pages and change payloads share it); `tail`: as
-- a change's tail (its group field and closing brace, in the same concatenation).
local function view(g, read, tail)
  local extra, post = '', g.post
  if not post and g.verb == 'like' then post = g.gid:match('^like:(.*):') end  -- like:POST:WINDOW
  if post and post ~= '' then extra = ',"post":' .. jstr(post) end
  if g.comment then extra = extra .. ',"comment":' .. jstr(g.comment) end
  if g.text and g.text ~= '' then extra = extra .. ',"text":' .. jstr(g.text) end
  local actors, count, first, last
  if g.single then
    actors, count, last = jstr(g.actor), '1', int(g.t)
    first = last
  else
    local a = g.actors or actors_of(g.gid)
    local names = {}
    for i = 1, math.min(#a.top, SHOWN) do names[i] = jstr(a.top[i]:sub(8)) end
    actors, count, last = table.concat(names, ','), int(a.count), int(unpack_ms(a.top[1]))
    first = int(unpack_ms(a.first))
  end
  local open, close = '{"id":', '}'
  if tail then open, close = ',"group":{"id":', '}}' end
  return open .. jstr(g.gid) .. ',"verb":"' .. g.verb .. '"' .. extra .. ',"actors":[' .. actors
    .. '],"count":' .. count .. ',"first_at":' .. first .. ',"last_at":' .. last
    .. ',"read":' .. (read and 'true' or 'false') .. close
end

-- How many groups are unseen: newer than the user's seen mark (a time in ms, field `seen` of the
-- read marks; none: every group). Only rendered changes and pages count them (a binary search).
-- The mark is read once a user (SEEN; false: none): only seen.lua writes it, before it counts.
local function unseen()
  if SEEN == nil then SEEN = tonumber(call('HGET', K_MARKS, 'seen')) or false end
  if not SEEN then return size() end
  return seek(SEEN, '~')  -- '~': after every group id, so a tie at the mark is seen
end

-- A change as JSON: {"op":OP,"unread":N,"unseen":N + `tail`: its other fields and the closing
-- brace; after `lead` (publish: the message's head, in one concatenation).
local OPS = {[OP_UPSERT] = 'upsert', [OP_REMOVE] = 'remove', [OP_READ] = 'read', [OP_SEEN] = 'seen'}
-- Home-feed changes share the log (feeds/lua/feed_push.lua): `p` a post pushed into the feed,
-- `q` one taken out; REF is AUTHOR|POST. Published and replayed behind FEED_MARK
-- (schemas/layouts.py).
local function change_json(op, unread, tail, lead)
  return lead .. '{"op":"' .. OPS[op] .. '","unread":' .. unread .. ',"unseen":' .. int(unseen()) .. tail
end

-- Whether anyone listens to the user's channel (a gateway holding a session of theirs): a change
-- nobody receives is not rendered nor published (most users are offline). A script runs atomically,
-- so the answer holds for the whole call; a client subscribing later resumes from the log.
local LISTENED = {}
-- Ask once for several channels (apply: every item's user's).
local function listen(channels)
  local r = call('PUBSUB', 'NUMSUB', unpack(channels))
  for i = 1, #r, 2 do LISTENED[r[i]] = r[i + 1] > 0 end
end
local function listened()
  local yes = LISTENED[CHANNEL]
  if yes == nil then
    yes = call('PUBSUB', 'NUMSUB', CHANNEL)[2] > 0
    LISTENED[CHANNEL] = yes
  end
  return yes
end

-- Every change this call logs carries its check (schemas/cursor.py): a number drawn from the
-- call's random epoch candidate, CHECK_MIN to 2 * CHECK_MIN - 1, so a change number that Redis
-- reuses after losing the end of the log comes with another check. A log entry starts with it as
-- CHECK_BYTES bytes, the first >= 128; an entry logged before checks starts with its op letter
-- (check 0). See schemas/layouts.py.
local CHECK = CHECK_MIN + (tonumber(EPOCH_NEW:sub(1, 6), 16) or 0) % CHECK_MIN
local CHECK_HEAD = be_bytes(CHECK, CHECK_BYTES)
CHECK = int(CHECK)
-- The check of a log entry, and where the rest of it starts.
local function check_of(entry)
  local b = entry:byte(1)
  if b and b >= 128 then return be_number(entry, 1, CHECK_BYTES), CHECK_BYTES + 1 end
  return 0, 1
end
local function last_check()
  local entry = call('LINDEX', K_LOG, -1)
  return entry and check_of(entry) or 0
end

-- Publishing. An upsert the apply makes (HOLD_UPSERTS) is held until the inbox cap has dropped
-- what it pushed out: those removes ride on it as "dropped" under the last change's number, so a
-- hot user's clients get one frame per new notification instead of two (schemas/protocol.py).
-- The log keeps every change; a replay sends them one by one.
local HOLD_UPSERTS, HELD = false, nil  -- HELD: {seq, unread, tail, dropped ids as JSON or nil}
-- QUIET: log without publishing (lua/feed_push.lua: a burst told as one RESYNC_MESSAGE)
local QUIET = false
local function publish(seq, op, unread, tail)
  local sep = PUBLISHED_SEPARATOR
  -- a home-feed change (an op OPS does not name) is published as FEED_MARK and its payload,
  -- built by schemas/protocol.py (feeds/changelog.py `published` parses both kinds)
  local lead = S.epoch .. sep .. int(seq) .. sep .. CHECK .. TAG .. sep
  call('PUBLISH', CHANNEL, OPS[op] and change_json(op, unread, tail, lead) or lead .. FEED_MARK .. tail)
end
-- Publish the held upsert, if any (apply: after each item).
local function flush()
  local h = HELD
  if not h then return end
  HELD = nil
  local tail = h.tail
  if h.dropped then tail = tail:sub(1, -2) .. ',"dropped":[' .. table.concat(h.dropped, ',') .. ']}' end
  publish(h.seq, OP_UPSERT, h.unread, tail)
end

-- A new log's epoch: the call's candidate made the user's own (schemas/layouts.py user_epoch,
-- which this mirrors: its last 6 hex digits plus a hash of the log's key, modulo 2^24).
local function user_epoch()
  local h = 0
  for i = 1, #K_LOG do h = (h * 31 + K_LOG:byte(i)) % 16777216 end
  return EPOCH_NEW:sub(1, 6) .. string.format('%06x', (tonumber(EPOCH_NEW:sub(7, 12), 16) + h) % 16777216)
end

-- The log (`n` long) back to its last MAX_CHANGES, or, while fewer than MAX_CHANGES changes
-- came after the latest burst (BURST_FIELD: schemas/layouts.py), to the burst's first change.
local function trim(n)
  local keep = MAX_CHANGES
  local burst = call('HGET', K_ITEMS, BURST_FIELD)
  if burst then
    local first, last = burst:match('^(%d+) (%d+)$')
    if first and S.seq - tonumber(last) < MAX_CHANGES then
      keep = math.max(keep, S.seq - tonumber(first) + 1)
    else
      call('HDEL', K_ITEMS, BURST_FIELD)
    end
  end
  if n > keep then call('LTRIM', K_LOG, int(-keep), '-1') end
end

-- Append one change to the log and publish it as "EPOCH N CHECK[TAG] PAYLOAD" for live push
-- (schemas/layouts.py: the gateway makes the cursor of it; TAG: layouts.push_tag). The log keeps
-- `CHECK OP UNREAD REF` (CHECK: CHECK_BYTES bytes; REF: a group's short id, or `*` or the ids
-- read): a replay renders the group as it is then. `tail`: see change_json; an upsert gives its
-- group `g` and whether it is `read` instead, rendered only if someone listens. `dropped`: the
-- JSON id of a group the inbox cap dropped, which rides on the held upsert if there is one.
local function emit(op, ref, tail, dropped, g, read)
  local s = S
  s.epoch, s.seq, s.dirty = s.epoch or user_epoch(), s.seq + 1, true
  local unread = int(s.unread)
  local n = call('RPUSH', K_LOG, CHECK_HEAD .. op .. unread .. ' ' .. ref)
  if n > TRIM_PAST and not QUIET then trim(n) end
  if QUIET or not listened() then return end
  local h = HELD
  if dropped and h then
    h.seq, h.unread = s.seq, unread
    h.dropped = h.dropped or {}
    h.dropped[#h.dropped + 1] = dropped
    return
  end
  flush()
  if g then tail = view(g, read, true) end
  if op == OP_UPSERT and HOLD_UPSERTS then
    HELD = {seq = s.seq, unread = unread, tail = tail}
    return
  end
  publish(s.seq, op, unread, tail)
end

local function upserted(g, read)
  emit(OP_UPSERT, short(g.gid), nil, nil, g, read)
end

-- A group left the inbox (emptied, retracted or `capped`: dropped by the cap); its record is
-- already gone.
local function removed(g, capped)
  if g.t > mark(g.gid) then add_unread(-1) end
  if S.groups then call('HDEL', K_MARKS, g.gid, legacy_gid(g.gid) or g.gid) end
  local id = jstr(g.gid)
  emit(OP_REMOVE, short(g.gid), ',"id":' .. id .. '}', capped and id)
end

-- The cap's floor: the newest group (time, short id) the inbox cap dropped, kept in the field
-- `<` after the horizon's MS_BYTES (feeds/horizon.py; absent: none dropped yet). Nothing at or
-- below it enters the inbox again, neither a late item nor one the cap dropped (the inbox holds
-- only groups newer than it), so a dropped group's registers go with it: its items come back,
-- redelivered or replayed, as "nothing to do" without them. (Short ids order as the long ones:
-- within a verb they share its prefix, and the verbs' first letters order as the verbs.)
local function below_floor(t, gid)
  local m = S.mark
  if not m or #m <= MS_BYTES then return false end
  local ft = S.floor_t
  if not ft then
    ft = unpack_ms(m:sub(MS_BYTES + 1, 2 * MS_BYTES))
    S.floor_t = ft
  end
  if t ~= ft then return t < ft end
  -- an item without a group (gid ''): only strictly before the floor's time, for an active
  -- item at that time with a group id above the floor's is taken, and must meet its register
  -- (an unlike or unfollow names the group its like or follow would be in: feeds/items.py)
  return gid ~= '' and short(gid) <= m:sub(2 * MS_BYTES + 1)
end

-- The item (feeds/items.py) of a comment's or a mention's record.
local function single_item(g)
  if g.verb == 'comment' then return 'c|' .. g.comment end
  if g.comment then return 'm|c:' .. g.comment end
  return 'm|p:' .. g.post .. '|' .. g.actor
end

-- The registers of a like or follow group's actors go with it up to DROP_MAX of them; a bigger
-- group's stay for the horizon's sweep (lua/trim.lua), so one drop holds Redis a bounded time.
local DROP_MAX, DROP_LAST = 1024, '1023'

-- Drop the oldest groups beyond the cap (`size`: the inbox's, if a group was put in), with their
-- registers and actor sets, and raise the floor to the last one. S.gone: the groups dropped by
-- the item being applied (apply.lua writes no register of its own into one).
local function enforce_cap(size)
  while size and size > MAX_GROUPS do
    local g = decode(rpop())
    size = size - 1
    if g.single then
      call('HDEL', K_ITEMS, single_item(g))
    else
      local akey = A_PREFIX .. g.gid
      local members = call('ZRANGE', akey, '0', DROP_LAST)
      if #members > 0 and #members < DROP_MAX then
        local lead = g.verb == 'like' and 'l|' .. g.gid:match('^like:(.*):') .. '|' or 'f|'
        for i, m in ipairs(members) do members[i] = lead .. m:sub(MS_BYTES + 1) end
        call('HDEL', K_ITEMS, unpack(members))
      end
      call('DEL', akey)
    end
    if not below_floor(g.t, g.gid) then
      S.mark = (S.mark and S.mark:sub(1, MS_BYTES) or NO_HORIZON) .. pack_ms(g.t) .. short(g.gid)
      S.floor_t, S.raised = g.t, true
    end
    S.gone = S.gone or {}
    S.gone[g.gid] = true
    removed(g, true)
  end
end
