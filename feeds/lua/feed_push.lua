-- Change one user's home feed (KEYS 1..5: lua/common.lua's, 6: the home feed, 7 and 8: the
-- actors the user mutes and blocks) and log each change that changed it, published for live
-- push (common.lua's emit, behind FEED_MARK). A post of an author the user mutes or blocks now
-- is not pushed (reads hide it anyway: feeds/preferences.py decides what shows).
-- ARGV after common's: posts kept, push tag (feeds.changelog.push_tag, or ''), then per change:
--   op (p push | q take out), member AUTHOR|POST, time ms (p; '' for q), payload (the feed
--   change's JSON, schemas/protocol.py).
-- Idempotent: a change that finds the feed already so logs nothing (a resumed or redelivered
-- fan-out sends no duplicate). Returns how many changes were logged.
local K_HOME, K_MUTES, K_BLOCKS = KEYS[6], KEYS[7], KEYS[8]
local function hidden(m)
  local author = m:match('^[^|]*')
  return redis.call('ZSCORE', K_MUTES, author) or redis.call('ZSCORE', K_BLOCKS, author)
end
local cap = string.format('%d', -tonumber(ARGV[BASE + 1]) - 1)
TAG = ARGV[BASE + 2]
state()
local logged = 0
for a = BASE + 3, #ARGV, 4 do
  local op, m, payload = ARGV[a], ARGV[a + 1], ARGV[a + 3]
  if op == 'p' then
    if not hidden(m) and redis.call('ZADD', K_HOME, 'CH', ARGV[a + 2], m) == 1 then
      redis.call('ZREMRANGEBYRANK', K_HOME, '0', cap)  -- the oldest beyond the cap go unlogged
      if redis.call('ZSCORE', K_HOME, m) then
        emit('p', m, payload)
        logged = logged + 1
      end
    end
  elseif redis.call('ZREM', K_HOME, m) == 1 then
    emit('q', m, payload)
    logged = logged + 1
  end
end
save()
return logged
