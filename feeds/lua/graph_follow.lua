-- Apply follows and unfollows to sides of the follow graph, each one user's following list or
-- followers list: a last-writer-wins register per other user, so applying the same event twice,
-- or follows and unfollows in any order, ends in the same list (feeds/graph.py runs both sides
-- from the same ops, so they agree). One call applies several sides (on a cluster, of one slot):
-- the call's fixed cost, not the side's, is most of what a single follow costs Redis.
-- KEYS: per side, 1 registers (hash: other user -> "STATE TIME_MS EVENT_ID"), 2 the list (sorted
--   set by follow time), both of the side's user's slot.
-- ARGV: per side, how many ops, then FIELDS per op: the other user, state (a follows | i
--   unfollowed | x retracted for good), time ms, event id.
-- Returns per side, in its own pcall, the state of each of its ops once applied (a | i | x: what
-- the home feed acts on, the same whether this call changed it or an earlier delivery did), or
-- the error's text (a key of another type): the other sides are applied all the same.
local FIELDS = 4

local function side(registers, list, a, n)
  local results = {}
  for i = 1, n do
    local at = a + (i - 1) * FIELDS
    local user, st, ts, eid = ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3]), ARGV[at + 4]
    local old = redis.call('HGET', registers, user)
    local newer = true
    if old then
      local s, t, e = old:match('^(%S+) (%d+) (.*)$')
      t = tonumber(t)
      if s == 'x' or (st ~= 'x' and (ts < t or (ts == t and eid <= e))) then newer = false end
    end
    if newer then
      if st == 'a' then
        redis.call('ZADD', list, ts, user)
      else
        redis.call('ZREM', list, user)
      end
      redis.call('HSET', registers, user, st .. ' ' .. ts .. ' ' .. eid)
      results[i] = st
    else
      results[i] = old:sub(1, 1)
    end
  end
  return results
end

local out, a = {}, 0
for s = 1, #KEYS / 2 do
  local n = tonumber(ARGV[a + 1])
  local ok, r = pcall(side, KEYS[2 * s - 1], KEYS[2 * s], a + 1, n)
  if ok then out[s] = r else out[s] = type(r) == 'table' and r.err or tostring(r) end
  a = a + 1 + n * FIELDS
end
return out
