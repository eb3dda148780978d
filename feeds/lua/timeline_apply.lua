-- Apply post_created / post_deleted to their author's timeline: a register per post, where a
-- deletion is final (a tombstone) and a newer creation of a live post replaces it (last writer
-- wins by event time, then event id), so any order of the same events, with duplicates, ends in
-- the same timeline.
-- KEYS: 1 records (hash: post -> "a TIME_MS EVENT_ID\nRECORD_JSON" | "x TIME_MS EVENT_ID"),
--   2 timeline (sorted set: live posts by time). Both of the author's slot.
-- ARGV: 1 posts kept (the oldest beyond are dropped), then FIELDS per op: post, state
--   (a created | x deleted), time ms, event id, record JSON (a only).
-- Returns per op the post's state once applied: a live, x deleted, '' not kept (older than the
-- newest posts kept).
local FIELDS = 5
local cap = tonumber(ARGV[1])
local results = {}
for i = 1, (#ARGV - 1) / FIELDS do
  local a = 1 + (i - 1) * FIELDS
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
return results
