-- Apply post_created / post_deleted to their author's timeline: a register per post, where a
-- deletion is final (a tombstone) and a newer creation of a live post replaces it (last writer
-- wins by event time, then event id), so any order of the same events, with duplicates, ends in
-- the same timeline.
-- KEYS: 1 records (hash: post -> "a TIME_MS EVENT_ID\nRECORD_JSON" | "x TIME_MS EVENT_ID"),
--   2 timeline (sorted set: live posts by time), 3 tombstones (sorted set: deleted posts by the
--   acceptance time of their deletion). All of the author's slot.
-- ARGV: 1 posts kept (the oldest beyond are dropped), 2 tombstone horizon (ms: tombstones of
--   deletions accepted before it are forgotten, a few per call), then FIELDS per op: post, state
--   (a created | x deleted), time ms, event id, record JSON (a only), acceptance time ms.
-- Returns per op the post's state once applied: a live, x deleted, '' not kept (older than the
-- newest posts kept).
local FIELDS = 6
local cap, horizon = tonumber(ARGV[1]), ARGV[2]
local results = {}
for i = 1, (#ARGV - 2) / FIELDS do
  local a = 2 + (i - 1) * FIELDS
  local post, st, ts, eid, record = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4], ARGV[a + 5]
  local old = redis.call('HGET', KEYS[1], post)
  local newer = true
  if old then
    local s, t, e = old:match('^(%S+) (%d+) ([^\n]*)')
    t = tonumber(t)
    if s == 'x' or (st ~= 'x' and (ts < t or (ts == t and eid <= e))) then newer = false end
  end
  if newer and st == 'x' then
    redis.call('ZREM', KEYS[2], post)
    redis.call('HSET', KEYS[1], post, 'x ' .. ts .. ' ' .. eid)
    redis.call('ZADD', KEYS[3], ARGV[a + 6], post)
  elseif newer then
    redis.call('ZADD', KEYS[2], ts, post)
    redis.call('HSET', KEYS[1], post, 'a ' .. ts .. ' ' .. eid .. '\n' .. record)
    local over = redis.call('ZCARD', KEYS[2]) - cap
    if over > 0 then  -- the oldest live posts go, records and all (tombstones stay)
      local dropped = redis.call('ZRANGE', KEYS[2], 0, over - 1)
      redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
      redis.call('HDEL', KEYS[1], unpack(dropped))
    end
  end
  local now = redis.call('HGET', KEYS[1], post)
  results[i] = now and now:sub(1, 1) or ''
end
-- Tombstones outlive every event that could still bring their post back only as long as the
-- event log keeps them: past the horizon they go (a bounded few per call, so the work spreads).
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. horizon, 'LIMIT', 0, 16)
for _, post in ipairs(old) do
  local reg = redis.call('HGET', KEYS[1], post)
  if reg and reg:sub(1, 1) == 'x' then redis.call('HDEL', KEYS[1], post) end
end
if #old > 0 then redis.call('ZREM', KEYS[3], unpack(old)) end
return results
