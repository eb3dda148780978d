-- Apply follows and unfollows to one side of the follow graph, one user's following list or
-- followers list: a last-writer-wins register per other user, so applying the same event twice,
-- or follows and unfollows in any order, ends in the same list (feeds/graph.py runs both sides
-- from the same ops, so they agree).
-- KEYS: 1 registers (hash: other user -> "STATE TIME_MS EVENT_ID"), 2 the list (sorted set by
--   follow time). Both of the one user's slot.
-- ARGV: FIELDS per op: the other user, state (a follows | i unfollowed | x retracted for good),
--   time ms, event id.
-- Returns per op the follow's state once applied (a | i | x): what the home feed acts on, the
-- same whether this call changed it or an earlier delivery did.
local FIELDS = 4
local results = {}
for i = 1, #ARGV / FIELDS do
  local a = (i - 1) * FIELDS
  local user, st, ts, eid = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4]
  local old = redis.call('HGET', KEYS[1], user)
  local newer = true
  if old then
    local s, t, e = old:match('^(%S+) (%d+) (.*)$')
    t = tonumber(t)
    if s == 'x' or (st ~= 'x' and (ts < t or (ts == t and eid <= e))) then newer = false end
  end
  if newer then
    if st == 'a' then
      redis.call('ZADD', KEYS[2], ts, user)
    else
      redis.call('ZREM', KEYS[2], user)
    end
    redis.call('HSET', KEYS[1], user, st .. ' ' .. ts .. ' ' .. eid)
    results[i] = st
  else
    results[i] = old:sub(1, 1)
  end
end
return results
