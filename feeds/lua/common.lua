-- Shared head of every inbox script. All keys belong to one user (hash tag {u:ID}).
-- KEYS: 1 toggles, 2 inbox, 3 unread, 4 read marks, 5 change log, 6 meta, 7 followers
-- ARGV 1..7: group prefix, actors prefix, channel, epoch candidate, max groups,
--            max change-log entries, actors shown per group; the script's own ARGV follow.
local K_TOG, K_INBOX, K_UNREAD, K_MARKS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_LOG, K_META, K_FOLLOWERS = KEYS[5], KEYS[6], KEYS[7]
local G_PREFIX, A_PREFIX, CHANNEL, EPOCH_NEW = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local MAX_GROUPS, MAX_CHANGES, SHOWN = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local BASE = 7

local function epoch()
  local e = redis.call('HGET', K_META, 'epoch')
  if not e then
    redis.call('HSET', K_META, 'epoch', EPOCH_NEW)
    e = EPOCH_NEW
  end
  return e
end

local function read_mark(gid)
  local m = tonumber(redis.call('HGET', K_MARKS, gid) or '0')
  local all = tonumber(redis.call('HGET', K_MARKS, '*') or '0')
  if all > m then return all end
  return m
end

-- Append one change to the log (trimmed in chunks, remembering the last id trimmed away)
-- and publish it as "EPOCH.ID PAYLOAD" for live push.
local function emit(change)
  change.unread = redis.call('SCARD', K_UNREAD)
  local payload = cjson.encode(change)
  local e = epoch()
  local id = redis.call('XADD', K_LOG, '*', 'd', payload)
  local n = redis.call('XLEN', K_LOG)
  if n > MAX_CHANGES + math.floor(MAX_CHANGES / 8) then
    local gone = redis.call('XRANGE', K_LOG, '-', '+', 'COUNT', n - MAX_CHANGES)
    redis.call('HSET', K_META, 'trimmed', gone[#gone][1])
    redis.call('XTRIM', K_LOG, 'MAXLEN', MAX_CHANGES)
  end
  redis.call('PUBLISH', CHANNEL, e .. '.' .. id .. ' ' .. payload)
end

local function group_view(gid)
  local akey = A_PREFIX .. gid
  local n = redis.call('ZCARD', akey)
  if n == 0 then return nil end
  local top = redis.call('ZREVRANGE', akey, 0, SHOWN - 1, 'WITHSCORES')
  local first = redis.call('ZRANGE', akey, 0, 0, 'WITHSCORES')
  local f = redis.call('HMGET', G_PREFIX .. gid, 'v', 'p', 'c', 'x')
  local actors = {}
  for i = 1, #top, 2 do actors[#actors + 1] = top[i] end
  local g = {id = gid, verb = f[1], count = n, actors = actors,
             first_at = tonumber(first[2]), last_at = tonumber(top[2]),
             read = redis.call('SISMEMBER', K_UNREAD, gid) == 0}
  if f[2] then g.post = f[2] end
  if f[3] then g.comment = f[3] end
  if f[4] then g.text = f[4] end
  return g
end

-- Bring a group's inbox entry, unread flag and clients in line with its actors.
local function refresh(gid)
  local akey = A_PREFIX .. gid
  if redis.call('ZCARD', akey) == 0 then
    if redis.call('ZREM', K_INBOX, gid) == 1 then
      redis.call('DEL', G_PREFIX .. gid)
      redis.call('SREM', K_UNREAD, gid)
      redis.call('HDEL', K_MARKS, gid)
      emit({op = 'remove', id = gid})
    end
    return
  end
  local last = tonumber(redis.call('ZREVRANGE', akey, 0, 0, 'WITHSCORES')[2])
  redis.call('ZADD', K_INBOX, last, gid)
  if last > read_mark(gid) then
    redis.call('SADD', K_UNREAD, gid)
  else
    redis.call('SREM', K_UNREAD, gid)
  end
  emit({op = 'upsert', group = group_view(gid)})
end

local function enforce_cap()
  local excess = redis.call('ZCARD', K_INBOX) - MAX_GROUPS
  if excess <= 0 then return end
  for _, gid in ipairs(redis.call('ZRANGE', K_INBOX, 0, excess - 1)) do
    redis.call('DEL', A_PREFIX .. gid)
    refresh(gid)
  end
end
