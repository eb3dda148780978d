-- Mark groups read: ARGV mode ('all' | 'ids'), then group ids. Idempotent: nothing already
-- read is logged again.
if ARGV[BASE + 1] == 'all' then
  if redis.call('SCARD', K_UNREAD) == 0 then return 0 end
  local top = redis.call('ZREVRANGE', K_INBOX, 0, 0, 'WITHSCORES')
  local w = tonumber(top[2] or '0')
  if w > tonumber(redis.call('HGET', K_MARKS, '*') or '0') then
    redis.call('HSET', K_MARKS, '*', top[2])
  end
  local n = redis.call('SCARD', K_UNREAD)
  redis.call('DEL', K_UNREAD)
  emit({op = 'read', all = true})
  return n
end
local done = {}
for i = BASE + 2, #ARGV do
  local gid = ARGV[i]
  if redis.call('SREM', K_UNREAD, gid) == 1 then
    redis.call('HSET', K_MARKS, gid, redis.call('ZSCORE', K_INBOX, gid))
    done[#done + 1] = gid
  end
end
if #done == 0 then return 0 end
emit({op = 'read', groups = done})
return #done
