-- Apply follows and unfollows to one user's following list: a last-writer-wins register per
-- followed user, so applying the same event twice, or follows and unfollows in any order, ends
-- in the same list (the inbox keeps the other side, the followed user's followers, the same way).
-- KEYS: 1 registers (hash: followed -> "STATE TIME_MS EVENT_ID"), 2 following (sorted set by
--   follow time). Both of the follower's slot.
-- ARGV: FIELDS per op: followed user, state (a follows | i unfollowed | x retracted for good),
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
