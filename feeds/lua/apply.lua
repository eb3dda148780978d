-- Apply items, each to its user's inbox: a last-writer-wins register per item, so applying the
-- same event twice, or a set of events in any order, ends in the same views.
-- KEYS: the items key of each user, user after user (on a cluster, those of all but the first
-- follow ARGV: lua/sharded_keys.lua); their other keys (common.lua) are named from it.
-- ARGV after the head, per user (feeds/inbox.py): how many of their items follow, then per item
--   FIELDS: item, state (a active | i inactive | x retracted for good), time ms, the event's
--   register token (layouts.register_token: what breaks a tie of times), group id, actor, push
--   tag (layouts.push_tag, or ''); then for a comment or a mention (item c|... or m|...) post,
--   comment, text. The verb is the item's kind (VERBS). Every argument costs
--   Redis ~1,000-2,000 instructions: a like sends none it does not use, and a user's items key
--   comes once, the rest of their names derived from it (user_names, feeds/scripts.py).
-- Returns one result per item: 1 applied, 0 nothing to do (what is there is as new), -1 refused
-- (older than the user's trimmed horizon: feeds/horizon.py), or the error's text. One call
-- applies several items (they share the call's fixed cost), each in its
-- own pcall: an item that fails (a key of the wrong type) leaves the others applied.
local FIELDS, SINGLE_FIELDS = 7, 3

-- Whether this call checked the type of a change log (once per user: see apply).
local CHECKED = {}

-- Likes and follows: take member `gone` out of a group's actor set and put `added` (at time `t`,
-- score `score`) in (either may be nil), then bring the group's record, the unread count and
-- clients in line. A group's actor set exists exactly while its record is in the inbox. Returns
-- the inbox size if the record was put (back) in.
local function change(group, gone, added, t, score)
  local akey = A_PREFIX .. group
  local read = mark(group)
  -- the newest record; and this read fails now, not after the actor set changed, on a key of
  -- another type
  local top = head()
  -- the group's time before: its newest member (with what ZREM takes, without what ZADD adds);
  -- after: the newest left, or the added one if newer. Only the newest members are read (the
  -- view reads the set when someone listens).
  local newest = call('ZRANGE', akey, '-1', '-1')[1]
  local was = newest and unpack_ms(newest)
  local now = was
  local left = gone and call('ZREM', akey, gone) == 1
  if left and gone == newest then
    local rest = call('ZRANGE', akey, '-1', '-1')[1]
    now = rest and unpack_ms(rest)
  end
  if added then
    call('ZADD', akey, score, added)
    if not now or t > now then now = t end
  elseif not left then  -- a register that outlived its member (the cap dropped the group)
    return
  end
  if not (was or now) then return end  -- not in the inbox (dropped by the cap), and still not
  local g = multi(now or was, group, true)
  if was == now then  -- same time: the record stays, the view changed
    upserted(g, now <= read)
    return
  end
  local size
  local old_rec = newest and newest:sub(1, MS_BYTES) .. short(group)  -- encode(multi(was, group))
  if old_rec and old_rec == top and now and now > was then  -- on top, and staying there
    set_head(encode(g))
  else
    if old_rec then lrem(old_rec) end
    if not now then
      g.t = was
      return removed(g)
    end
    size = insert(g)
  end
  add_unread((now > read and 1 or 0) - ((was and was > read) and 1 or 0))
  upserted(g, now <= read)
  return size
end

-- A user's items follow one another (feeds/inbox.py): their state and trimmed horizon are read
-- with the register of their first item, and the state is written with the register of their
-- LAST item (or after it: see the loop below).
local HORIZON, LAST
local function register_of(item)
  if S then return call('HGET', K_ITEMS, item) end
  local _, old
  _, old, HORIZON = state(item, HORIZON_FIELD)
  return old
end
-- The register is the 'already applied' mark: written last. A new user's state goes with their
-- first register (and their empty watermark: common.lua state()), near the hash's front. None is
-- written for an item whose group the cap dropped at once (`gid` in S.gone: common.lua
-- enforce_cap): the floor answers for it.
local function applied(item, register, gid)
  if S.gone and S.gone[gid] then item = nil end
  if LAST or S.no_horizon then
    save(item, register)
  elseif item then
    call('HSET', K_ITEMS, item, register)
  end
  return 1
end

local function apply(a)  -- a: ARGV index before the item's fields
  local item, st, ts, eid = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4]
  local gid, actor = ARGV[a + 5], ARGV[a + 6]
  local kind = item:sub(1, 1)

  -- The register (schemas/layouts.py): state, time, token, and for an active like or follow
  -- REGISTER_WINDOW + the window of its group (like:POST:WINDOW, follow:WINDOW: the rest is in
  -- the item, l|POST|ACTOR or f|ACTOR, see items.py).
  local old, horizon = register_of(item), HORIZON
  S.gone = nil
  -- No register: the item is new, or its register was trimmed (trim.lua) or dropped with its
  -- group by the cap. At or below the cap's floor it has nothing to do (common.lua
  -- below_floor). An event at or below the user's trimmed horizon could be one that register
  -- outranked: refused (-1), never applied blindly. A retraction is final whatever came before:
  -- it always applies.
  if not old and st ~= 'x' then
    if below_floor(ts, gid) then return 0 end
    if horizon and ts <= unpack_ms(horizon) then return -1 end
  end
  local old_state, old_ts, old_gid = 'none', nil, ''
  -- the window: after the group id's last ':' (anchored: an unanchored pattern is tried from
  -- every position, ~3,500 instructions an item)
  local window = st == 'a' and (kind == 'l' or kind == 'f') and gid:match('^.*:(.*)$') or nil
  if old then
    local s, t = old:sub(1, 1), unpack_ms(old:sub(2, MS_BYTES + 1))
    if s == 'x' then return 0 end
    local bar = old:find(REGISTER_WINDOW, MS_BYTES + 2, true)
    if st ~= 'x' and (ts < t or (ts == t and eid <= old:sub(MS_BYTES + 2, (bar or 0) - 1))) then return 0 end
    old_state, old_ts = s, t
    if bar then
      local w = old:sub(bar + 1)
      if w == window then
        old_gid = gid
      elseif kind == 'l' then
        old_gid = 'like:' .. item:match('^l|(.*)|') .. ':' .. w
      else
        old_gid = 'follow:' .. w
      end
    end
  end

  -- Everything that can fail on a key of the wrong type is read before the first write: a failed
  -- item leaves nothing half-applied, and its redelivery applies it whole. (Once per user a call:
  -- its type cannot change in between.)
  if not CHECKED[K_LOG] then
    call('LLEN', K_LOG)
    CHECKED[K_LOG] = true
  end

  local ms = pack_ms(ts)
  local register = window and st .. ms .. eid .. REGISTER_WINDOW .. window or st .. ms .. eid

  -- Comments and mentions: one item, one actor, one group, whose record is all there is of it.
  -- The group id comes with every op (it is fixed by the item).
  if kind == 'c' or kind == 'm' then
    local rec, live
    if old_state == 'a' then rec, live = find(old_ts, gid) end
    if st == 'a' and not live and below_floor(ts, gid) then return 0 end
    local read = mark(gid)
    if st == 'a' then
      local post, comment, text = ARGV[a + 8], ARGV[a + 9], ARGV[a + 10]
      local g = {t = ts, gid = gid, verb = VERBS[kind], single = true, actor = actor, post = post, text = text}
      if comment ~= '' then g.comment = comment end
      if live then  -- a newer event for the item: what it leaves out stays as it was
        if post == '' then g.post = live.post end
        if text == '' then g.text = live.text end
        lrem(rec)
      end
      local size = insert(g)
      add_unread((ts > read and 1 or 0) - ((live and live.t > read) and 1 or 0))
      upserted(g, ts <= read)
      enforce_cap(size)
    elseif live then
      lrem(rec)
      removed(live)
    end
    return applied(item, register, gid)
  end

  -- an actor's member in a group's set is the time of the item's register and the actor
  local new_gid = st == 'a' and gid or ''
  local old_member = old_state == 'a' and old:sub(2, MS_BYTES + 1) .. actor or nil
  -- below the floor, an actor only moves within the group they are in, while it is shown
  -- (common.lua below_floor); whether a register of a dropped group is left makes no difference
  if st == 'a' and below_floor(ts, gid) then
    if old_gid ~= gid or not call('ZSCORE', A_PREFIX .. gid, old_member) then return 0 end
  end
  if old_member and old_gid ~= new_gid then change(old_gid, old_member, nil) end
  if st == 'a' then
    if old_gid ~= gid then old_member = nil end
    enforce_cap(change(gid, old_member, ms .. actor, ts, ARGV[a + 3]))
  end
  return applied(item, register, gid)
end

HOLD_UPSERTS = true
-- per user: their keys and names, and the last of their items' ARGV indexes (`starts`)
local results, users, channels, starts = {}, {}, {}, {}
local a = BASE
while a < ARGC do
  local u = #users + 1
  local keys, k = keys_at(u - 1)
  local items = keys[k + 1]
  local inbox, marks, log, prefix, channel = user_names(items)
  a = a + 1
  for _ = 1, tonumber(ARGV[a]) do
    starts[#starts + 1] = a
    local kind = ARGV[a + 1]:byte(1)
    a = a + FIELDS + ((kind == 99 or kind == 109) and SINGLE_FIELDS or 0)  -- c, m
  end
  users[u] = {{items, inbox, marks, log}, prefix, channel, #starts}
  channels[u] = channel
end
listen(channels)
local i = 0
for _, user in ipairs(users) do
  use(user[1], 0, user[2], user[3])
  S = nil
  while i < user[4] do
    i = i + 1
    a = starts[i]
    TAG, LAST = ARGV[a + 7], i == user[4]
    local ok, r = pcall(apply, a)
    flush()
    if ok then results[i] = r else results[i] = type(r) == 'table' and r.err or tostring(r) end
  end
  if S and S.dirty then save() end  -- their last item wrote no register (or failed)
end
return results
