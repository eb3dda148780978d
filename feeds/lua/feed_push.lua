-- Change the home feeds of several users in one call (every user of one slot or, on a cluster,
-- of one master: lua/sharded_keys.lua) and log each change that changed a feed, published for
-- live push (common.lua's emit, behind FEED_MARK).
-- KEYS: FEED_USER_KEYS per user: common.lua's USER_KEYS, the home feed, the actors the user mutes
--   and blocks, the user's hide marks (feeds/preferences.py); then, optionally, the records of the
--   author of the post pushed (keys.post_records), read to stop the push once the post is
--   deleted. (On a cluster, all but the first user's follow ARGV: lua/sharded_keys.lua.)
-- ARGV after common's head: posts kept, push tag (feeds.changelog.push_tag, or ''), the post
--   checked in those records ('' if none), then per user: channel, number of changes N, and N
--   changes of 4: op (p push | q take out), member AUTHOR|POST, time ms (p; '' for q), payload
--   (the feed change's JSON, schemas/protocol.py).
-- A post is not pushed to a user who mutes or blocks its author now, nor who did at or after the
-- post's time (a hide mark: reads hide it anyway, feeds/preferences.py decides what shows), nor
-- at all once the checked post is deleted (its push and its deletion's clean-up then reach each
-- user in the order Redis ran them: never an add after the remove).
-- A user's changes past PUBLISHED_BURST are published as one RESYNC_MESSAGE (schemas/layouts.py),
-- and the log keeps them whole until MAX_CHANGES changes came after them (BURST_FIELD).
-- Idempotent: a change that finds the feed already so logs nothing (a resumed or redelivered
-- fan-out sends no duplicate). Returns how many changes were logged, or -1 if the checked post
-- is deleted (nothing of it pushed: the caller stops).
local users = math.floor(NKEYS / FEED_USER_KEYS)
local K_HOME, K_MUTES, K_BLOCKS, K_HIDE
local cap = string.format('%d', -tonumber(ARGV[BASE + 1]) - 1)
TAG = ARGV[BASE + 2]
local checked = ARGV[BASE + 3]
local gone = false
if checked ~= '' and NKEYS > users * FEED_USER_KEYS then
  local keys, k = keys_at(NKEYS - 1)
  local register = call('HGET', keys[k + 1], checked)
  gone = not register or register:sub(1, 2) ~= 'a '
end

local function hidden(m, at)
  local author = m:match('^[^|]*')
  if call('ZSCORE', K_MUTES, author) or call('ZSCORE', K_BLOCKS, author) then return true end
  for _, mark in ipairs(call('HMGET', K_HIDE, 'm:' .. author, 'b:' .. author)) do
    if mark and tonumber(at) <= tonumber(mark) then return true end
  end
  return false
end

local channels, a = {}, BASE + 4
for u = 1, users do
  channels[u] = ARGV[a]
  a = a + 2 + 4 * tonumber(ARGV[a + 1])
end
if users > 0 then listen(channels) end

local logged = 0
a = BASE + 4
for u = 1, users do
  local keys, k = keys_at((u - 1) * FEED_USER_KEYS)
  use(keys, k, '', ARGV[a])
  k = k + USER_KEYS
  K_HOME, K_MUTES, K_BLOCKS, K_HIDE = keys[k + 1], keys[k + 2], keys[k + 3], keys[k + 4]
  local last = a + 1 + 4 * tonumber(ARGV[a + 1])
  local before = logged
  -- a burst (a follow's back-fill) is logged, then told as one RESYNC_MESSAGE (layouts.py)
  QUIET = tonumber(ARGV[a + 1]) > PUBLISHED_BURST
  local first = state().seq + 1
  for c = a + 2, last, 4 do
    local op, m, at, payload = ARGV[c], ARGV[c + 1], ARGV[c + 2], ARGV[c + 3]
    if op == OP_FEED_PUSH then
      if not gone and not hidden(m, at) and call('ZADD', K_HOME, 'CH', at, m) == 1 then
        call('ZREMRANGEBYRANK', K_HOME, '0', cap)  -- the oldest beyond the cap go unlogged
        if call('ZSCORE', K_HOME, m) then
          emit(OP_FEED_PUSH, m, payload)
          logged = logged + 1
        end
      end
    elseif call('ZREM', K_HOME, m) == 1 then
      emit(OP_FEED_DROP, m, payload)
      logged = logged + 1
    end
  end
  save()
  if QUIET and logged > before then
    -- kept whole until MAX_CHANGES changes follow (common.lua trim), for the sessions to re-read
    call('HSET', K_ITEMS, BURST_FIELD, int(first) .. ' ' .. int(S.seq))
    if listened() then call('PUBLISH', CHANNEL, RESYNC_MESSAGE) end
  end
  a = last + 1
end
if gone then return -1 end
return logged
