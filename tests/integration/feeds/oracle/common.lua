-- Shared head of every inbox script. A user's keys (hash tag {u:ID}), five by five:
--   1 items (the item registers, and the user's state under `#`),
--   2 inbox (list of group records, newest first), 3 read marks, 4 change log (list),
--   5 followers
-- ARGV 1..6: actors prefix, channel (of the user of KEYS 1..5; apply gives them per item),
--            epoch candidate, max groups, max change-log entries, actors shown per group
--            (0: as the last writer); the script's own ARGV follow.
local K_ITEMS, K_INBOX, K_MARKS, K_LOG, K_FOLLOWERS, A_PREFIX, CHANNEL
-- '@' .. the acceptance time (ms) of the event being applied (apply.lua sets it per item), or '':
-- it rides on the published cursor ("EPOCH.N-0@MS PAYLOAD") for the gateway's push latency
local TAG = ''
-- Work on the user whose keys follow KEYS[k], with that user's actors prefix and channel.
local function use(k, prefix, channel)
  K_ITEMS, K_INBOX, K_MARKS, K_LOG, K_FOLLOWERS = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  A_PREFIX, CHANNEL = prefix, channel
end
use(0, ARGV[1], ARGV[2])
local EPOCH_NEW = ARGV[3]
local MAX_GROUPS, MAX_CHANGES, SHOWN = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local BASE = 6

-- Times (ms) are stored as 7 big-endian bytes of t + 2^48 (every date an event can carry, exact
-- in a Lua number). Redis has `struct`; the in-memory fake Redis does not, hence the plain Lua.
local MS_OFFSET = 2 ^ 48
local pack_ms, unpack_ms
if struct then
  pack_ms = function(t) return struct.pack('>I7', t + MS_OFFSET) end
  unpack_ms = function(s) return struct.unpack('>I7', s) - MS_OFFSET end
else
  pack_ms = function(t)
    local u, b = t + MS_OFFSET, {}
    for i = 7, 1, -1 do
      b[i] = u % 256
      u = (u - b[i]) / 256
    end
    return string.char(b[1], b[2], b[3], b[4], b[5], b[6], b[7])
  end
  unpack_ms = function(s)
    local u = 0
    for i = 1, 7 do u = u * 256 + s:byte(i) end
    return u - MS_OFFSET
  end
end

-- Numbers become text through string.format('%d'): a Lua number's own conversion (%.14g) costs
-- twice as much, and is wrong past 14 digits.
local function int(n) return string.format('%d', n) end

-- A group id is VERB:REST; records and log entries abbreviate the verb to its first letter.
local VERBS = {l = 'like', f = 'follow', c = 'comment', m = 'mention'}
local function short(gid) return gid:sub(1, 1) .. gid:sub(gid:find(':', 1, true) + 1) end
local function long(s) return VERBS[s:sub(1, 1)] .. ':' .. s:sub(2) end

-- A group's record in the inbox list: its last activity time (7 bytes), then
--   likes and follows (any number of actors, kept in a sorted set per group): the short id;
--   comments and mentions (one actor): short id '|' actor '|' post '|' text, where a mention in
--   a post (group id mention:POST~ACTOR) is 'p' alone and the comment of the others is in its id.
-- Decoded, a record is a group: {t, gid, verb, single, actor, post, comment, text} (and, for
-- a like or follow group, `actors`: see actors_of, if already read).
local function encode(g)
  if not g.single then return pack_ms(g.t) .. short(g.gid) end
  local head = g.comment and short(g.gid) or 'p'
  return pack_ms(g.t) .. head .. '|' .. g.actor .. '|' .. g.post .. '|' .. g.text
end

local function multi(t, gid)
  local g = {t = t, gid = gid, verb = VERBS[gid:sub(1, 1)]}
  if g.verb == 'like' then g.post = gid:match('^like:(.*):') end  -- like:POST:WINDOW
  return g
end

local function decode(rec)
  local t, bar = unpack_ms(rec), rec:find('|', 8, true)  -- the time's bytes may hold a '|'
  if not bar then return multi(t, long(rec:sub(8))) end
  local s = rec:sub(8, bar - 1)
  local actor, post, text = rec:match('^([^|]*)|([^|]*)|(.*)$', bar + 1)
  local g = {t = t, single = true, actor = actor, post = post, text = text, verb = 'mention'}
  if s == 'p' then
    g.gid = 'mention:' .. post .. '~' .. actor  -- MENTION_IN_POST (was ':' when frozen)
  else
    g.verb, g.gid, g.comment = VERBS[s:sub(1, 1)], long(s), s:sub(2)
  end
  return g
end

-- The inbox is ordered newest first by (time, group id), as ZREVRANGE orders a sorted set.
local function newer(t1, g1, t2, g2) return t1 > t2 or (t1 == t2 and g1 > g2) end

-- Index of the first record that is not newer than (t, gid) (or, `past`, older than it).
local function seek(t, gid, past)
  local lo, hi = 0, redis.call('LLEN', K_INBOX)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local rec = redis.call('LINDEX', K_INBOX, mid)
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
  local rec = redis.call('LINDEX', K_INBOX, seek(t, gid))
  if rec then
    local g = decode(rec)
    if g.t == t and g.gid == gid then return rec, g end
  end
end

-- Put a group's record in its place, replacing one with the same time and id (a retry after a
-- failed script must not duplicate it); returns the inbox size. New activity usually goes on top.
-- `head`: the newest record if the caller has it (nil: the inbox is empty), false: read it.
local function insert(g, head)
  local rec, t, gid = encode(g), g.t, g.gid
  local here = head
  if here == false then here = redis.call('LINDEX', K_INBOX, 0) end
  if not here or t > unpack_ms(here) then return redis.call('LPUSH', K_INBOX, rec) end
  local at, h = 0, decode(here)
  if newer(t, gid, h.t, h.gid) then return redis.call('LPUSH', K_INBOX, rec) end
  if not (h.t == t and h.gid == gid) then
    at = seek(t, gid)
    here = redis.call('LINDEX', K_INBOX, at)
    if not here then return redis.call('RPUSH', K_INBOX, rec) end
    h = decode(here)
  end
  if h.t == t and h.gid == gid then
    redis.call('LSET', K_INBOX, at, rec)
    return redis.call('LLEN', K_INBOX)
  end
  return redis.call('LINSERT', K_INBOX, 'BEFORE', here, rec)  -- records are unique: `here` is at `at`
end

-- The user's state, in the items hash under `#` as "EPOCH SEQ UNREAD SHOWN": the change log's
-- epoch and last change number, the unread count, and the writers' actors per group (for the
-- readers that are not told it). Read once per script, with the register of `item` if given
-- (every script starts so), and written back by save().
local S
local function state(item)
  local r = item and redis.call('HMGET', K_ITEMS, item, '#') or {false, redis.call('HGET', K_ITEMS, '#')}
  local epoch, seq, unread, shown = (r[2] or ''):match('^(%S+) (%d+) (%d+) (%d+)$')
  S = {epoch = epoch, seq = tonumber(seq or '0'), unread = tonumber(unread or '0'), dirty = false}
  if SHOWN == 0 then SHOWN = tonumber(shown or '3') end
  return S, r[1]
end
-- Write the state back if it changed, with the register of `item` if given.
local function save(item, register)
  local packed = S.dirty and string.format('%s %d %d %d', S.epoch, S.seq, S.unread, SHOWN)
  if packed and item then
    redis.call('HSET', K_ITEMS, item, register, '#', packed)
  elseif packed then
    redis.call('HSET', K_ITEMS, '#', packed)
  elseif item then
    redis.call('HSET', K_ITEMS, item, register)
  end
end
local function add_unread(d)
  if d ~= 0 then S.unread, S.dirty = S.unread + d, true end
end

-- A group is unread while its time is after the user's read mark for it and the read-all mark.
local function mark(gid)
  local m = redis.call('HMGET', K_MARKS, gid, '*')
  return math.max(m[1] and tonumber(m[1]) or 0, m[2] and tonumber(m[2]) or 0)
end

-- JSON is assembled here rather than by cjson.encode of a table (several times cheaper), and
-- every string in it goes through jstr: valid JSON whatever an id or a text holds. Ids (the
-- events' contract: A-Z a-z 0-9 _ . : @ -) and most texts take the fast path, one find.
local function jstr(s)
  if s:find('[%c"\\]') then return cjson.encode(s) end
  return '"' .. s .. '"'
end

-- A like or follow group's actors are a sorted set by time whose members are TIME (7 bytes) and
-- ACTOR: times read back without Redis formatting scores as text, nor Lua parsing them.
-- actors_of: how many, the oldest member, and the newest members (the SHOWN ones, and at least
-- two), newest first. A small set (most are) is read whole in one call.
local SMALL = 16
local function actors_of(gid)
  local akey, newest = A_PREFIX .. gid, math.max(SHOWN, 2)
  local all = redis.call('ZRANGE', akey, 0, SMALL - 1)
  local a = {count = #all, first = all[1], top = {}}
  if #all == SMALL then
    a.count = redis.call('ZCARD', akey)
    if a.count > SMALL then all = redis.call('ZRANGE', akey, -newest, -1) end
  end
  for i = #all, math.max(1, #all - newest + 1), -1 do a.top[#a.top + 1] = all[i] end
  return a
end

-- The client's view of a group, as JSON (REST pages and change payloads share it).
local function view(g, read)
  local extra = ''
  if g.post and g.post ~= '' then extra = ',"post":' .. jstr(g.post) end
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
  return '{"id":' .. jstr(g.gid) .. ',"verb":"' .. g.verb .. '"' .. extra .. ',"actors":[' .. actors
    .. '],"count":' .. count .. ',"first_at":' .. first .. ',"last_at":' .. last
    .. ',"read":' .. (read and 'true' or 'false') .. '}'
end

-- A change as JSON: {"op":OP,"unread":N + `tail`: its other fields and the closing brace.
local OPS = {u = 'upsert', d = 'remove', r = 'read'}
local function change_json(op, unread, tail) return '{"op":"' .. OPS[op] .. '","unread":' .. unread .. tail end

-- Every change this call logs carries its check (schemas/cursor.py): a number drawn from the
-- call's random epoch candidate, 2^23 to 2^24 - 1, so a change number that Redis reuses after
-- losing the end of the log comes with another check. A log entry starts with it as 3 bytes, the
-- first >= 128; an entry logged before checks starts with its op letter (check 0).
local CHECK = 2 ^ 23 + (tonumber(EPOCH_NEW:sub(1, 6), 16) or 0) % 2 ^ 23
local CHECK_BYTES = string.char(math.floor(CHECK / 65536), math.floor(CHECK / 256) % 256, CHECK % 256)
CHECK = int(CHECK)
-- The check of a log entry, and where the rest of it starts.
local function check_of(entry)
  local b = entry:byte(1)
  if b and b >= 128 then return (b * 256 + entry:byte(2)) * 256 + entry:byte(3), 4 end
  return 0, 1
end
local function last_check()
  local entry = redis.call('LINDEX', K_LOG, -1)
  return entry and check_of(entry) or 0
end

-- Append one change to the log and publish it as "EPOCH N CHECK[TAG] PAYLOAD" for live push
-- (the gateway makes the cursor of it; TAG: feeds.changelog.push_tag). The log keeps `CHECK OP UNREAD REF` (CHECK: 3 bytes; REF: a
-- group's short id, or `*` or the ids read): a replay renders the group as it is then.
local function emit(op, ref, tail)
  local s = S
  s.epoch, s.seq, s.dirty = s.epoch or EPOCH_NEW, s.seq + 1, true
  local unread, seq = int(s.unread), int(s.seq)
  if redis.call('RPUSH', K_LOG, CHECK_BYTES .. op .. unread .. ' ' .. ref) > MAX_CHANGES then
    redis.call('LTRIM', K_LOG, -MAX_CHANGES, -1)
  end
  redis.call('PUBLISH', CHANNEL, s.epoch .. ' ' .. seq .. ' ' .. CHECK .. TAG .. ' ' .. change_json(op, unread, tail))
end

local function upserted(g, read) emit('u', short(g.gid), ',"group":' .. view(g, read) .. '}') end

-- A group left the inbox (emptied, retracted or dropped by the cap); its record is already gone.
local function removed(g)
  if g.t > mark(g.gid) then add_unread(-1) end
  redis.call('HDEL', K_MARKS, g.gid)
  emit('d', short(g.gid), ',"id":' .. jstr(g.gid) .. '}')
end

-- 2026-12-07, the one rule added since the freeze (README "The cap keeps what was newest when it
-- dropped"; the product: feeds/lua/common.lua below_floor): the cap's floor is the newest group
-- (time, id) the cap dropped, and nothing at or below it enters the inbox again. The product
-- also deletes the dropped groups' registers; this oracle keeps them, so the differential test
-- shows that deletion changes no view. Below the floor an actor only moves within the group
-- they are a member of while it is shown (apply.lua), and a register that outlived its member
-- changes nothing (change() below: it used to log an upsert of the group as it was).
local FLOOR_FIELD = 'floor'
local function below_floor(t, gid)
  local f = redis.call('HGET', K_ITEMS, FLOOR_FIELD)
  if not f then return false end
  local ft, fg = f:match('^(%-?%d+) (.*)$')
  ft = tonumber(ft)
  if t ~= ft then return t < ft end
  return gid ~= '' and gid <= fg
end

-- Drop the oldest groups beyond the cap (`size`: the inbox's, if a group was put in).
local function enforce_cap(size)
  while size and size > MAX_GROUPS do
    local g = decode(redis.call('RPOP', K_INBOX))
    size = size - 1
    if not g.single then redis.call('DEL', A_PREFIX .. g.gid) end
    if not below_floor(g.t, g.gid) then
      redis.call('HSET', K_ITEMS, FLOOR_FIELD, string.format('%d', g.t) .. ' ' .. g.gid)
    end
    removed(g)
  end
end
