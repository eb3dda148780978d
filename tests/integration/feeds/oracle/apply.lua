-- Apply items, each to its user's inbox: a last-writer-wins register per item, so applying the
-- same event twice, or a set of events in any order, ends in the same views.
-- KEYS: the five keys of each item's user (common.lua), item after item.
-- ARGV after the head: FIELDS per item: actors prefix, channel, item, state (a active |
--   i inactive | x retracted for good), time ms, event id, group id, actor, verb, post,
--   comment, text, maintain followers (1|0), push tag ('@' .. the event's acceptance ms, or '').
-- Returns one result per item: 1 applied, 0 nothing to do (what is there is as new), or the
-- error's text. One call applies several items (they share the call's fixed cost), each in its
-- own pcall: an item that fails (a key of the wrong type) leaves the others applied.
local FIELDS = 14

local function apply(a)  -- a: ARGV index before the item's fields
  local item, st, ts, eid = ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 5]), ARGV[a + 6]
  local gid, actor, verb = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local post, comment, text, follows = ARGV[a + 10], ARGV[a + 11], ARGV[a + 12], ARGV[a + 13]

  -- The register: state, time (7 bytes), event id, and for an active like or follow '|' + the
  -- window of its group (like:POST:WINDOW, follow:WINDOW: the rest is in the item, l|POST|ACTOR
  -- or f|ACTOR, see items.py).
  local _, old = state(item)
  if not old and st ~= 'x' and below_floor(ts, gid) then return 0 end  -- common.lua, 2026-12-07
  local old_state, old_ts, old_gid = 'none', nil, ''
  if old then
    local s, t = old:sub(1, 1), unpack_ms(old:sub(2, 8))
    if s == 'x' then return 0 end
    local e, w = old:match('^([^|]*)|?(.*)$', 9)
    if st ~= 'x' and (ts < t or (ts == t and eid <= e)) then return 0 end
    old_state, old_ts = s, t
    if w ~= '' and item:sub(1, 1) == 'l' then
      old_gid = 'like:' .. item:match('^l|(.*)|') .. ':' .. w
    elseif w ~= '' then
      old_gid = 'follow:' .. w
    end
  end

  -- Everything that can fail on a key of the wrong type is read before the first write: a failed
  -- item leaves nothing half-applied, and its redelivery applies it whole.
  redis.call('LLEN', K_LOG)

  local function register(group)
    local reg = st .. pack_ms(ts) .. eid
    if group ~= '' then reg = reg .. '|' .. group:match('[^:]*$') end
    save(item, reg)  -- the register is the 'already applied' mark: written last
    return 1
  end

  -- Comments and mentions: one item, one actor, one group, whose record is all there is of it.
  -- The group id comes with every op (it is fixed by the item).
  if item:sub(1, 1) == 'c' or item:sub(1, 1) == 'm' then
    local rec, live
    if old_state == 'a' then rec, live = find(old_ts, gid) end
    if st == 'a' and not live and below_floor(ts, gid) then return 0 end  -- 2026-12-07
    local read = mark(gid)
    if st == 'a' then
      local g = {t = ts, gid = gid, verb = verb, single = true, actor = actor, post = post, text = text}
      if comment ~= '' then g.comment = comment end
      if live then  -- a newer event for the item: what it leaves out stays as it was
        if post == '' then g.post = live.post end
        if text == '' then g.text = live.text end
        redis.call('LREM', K_INBOX, 1, rec)
      end
      local size = insert(g, false)
      add_unread((ts > read and 1 or 0) - ((live and live.t > read) and 1 or 0))
      upserted(g, ts <= read)
      enforce_cap(size)
    elseif live then
      redis.call('LREM', K_INBOX, 1, rec)
      removed(live)
    end
    return register('')
  end

  -- Likes and follows: take member `gone` out of a group's actor set and put `added` in (either
  -- may be nil), then bring the group's record, the unread count and clients in line. A group's
  -- actor set exists exactly while its record is in the inbox. Returns the inbox size if the
  -- record was put (back) in.
  local function change(group, gone, added)
    local akey = A_PREFIX .. group
    local read = mark(group)
    -- the newest record; and this read fails now, not after the actor set changed, on a key of
    -- another type
    local head = redis.call('LINDEX', K_INBOX, 0)
    local had_gone = gone and redis.call('ZREM', akey, gone) == 1
    if not had_gone and not added then return end  -- 2026-12-07: nothing changed (common.lua)
    local new_added = added and redis.call('ZADD', akey, ARGV[a + 5], added) == 1
    local actors = actors_of(group)  -- the view's too
    local now = actors.top[1] and unpack_ms(actors.top[1])
    -- the group's time before: the newest of the set without what ZADD added, with what ZREM took
    local was
    for _, member in ipairs(actors.top) do
      if not (new_added and member == added) then
        was = unpack_ms(member)
        break
      end
    end
    if had_gone and (not was or unpack_ms(gone) > was) then was = unpack_ms(gone) end
    if not (was or now) then return end  -- not in the inbox (dropped by the cap), and still not
    local g = multi(now or was, group)
    g.actors = actors
    if was == now then  -- same time: the record stays, the view changed
      upserted(g, now <= read)
      return
    end
    local size
    local old_rec = was and pack_ms(was) .. short(group)  -- encode(multi(was, group))
    if old_rec and old_rec == head and now and now > was then  -- on top, and staying there
      redis.call('LSET', K_INBOX, 0, encode(g))
    else
      if old_rec then redis.call('LREM', K_INBOX, 1, old_rec) end
      if not now then
        g.t = was
        return removed(g)
      end
      size = insert(g, old_rec ~= head and head)
    end
    add_unread((now > read and 1 or 0) - ((was and was > read) and 1 or 0))
    upserted(g, now <= read)
    return size
  end

  if follows == '1' then
    if st == 'a' then redis.call('SADD', K_FOLLOWERS, actor) else redis.call('SREM', K_FOLLOWERS, actor) end
  end
  if st == 'a' and below_floor(ts, gid) then  -- 2026-12-07
    if old_gid ~= gid or not redis.call('ZSCORE', A_PREFIX .. gid, pack_ms(old_ts) .. actor) then return 0 end
  end
  -- an actor's member in a group's set is the time of the item's register and the actor
  local new_gid = st == 'a' and gid or ''
  local old_member = old_state == 'a' and pack_ms(old_ts) .. actor or nil
  if old_member and old_gid ~= new_gid then change(old_gid, old_member, nil) end
  if st == 'a' then
    if old_gid ~= gid then old_member = nil end
    enforce_cap(change(gid, old_member, pack_ms(ts) .. actor))
  end
  return register(new_gid)
end

local results = {}
for i = 1, (#ARGV - BASE) / FIELDS do
  local a = BASE + (i - 1) * FIELDS
  use((i - 1) * 5, ARGV[a + 1], ARGV[a + 2])
  TAG = ARGV[a + 14]
  local ok, r = pcall(apply, a)
  if ok then results[i] = r else results[i] = type(r) == 'table' and r.err or tostring(r) end
end
return results
