-- One page of the inbox, newest first. ARGV: max score ('+inf' or a score), the last group id
-- of the previous page ('' for the first), page size.
-- Returns {more, unread, epoch, last change id, group json...}.
local maxs, after, limit = ARGV[BASE + 1], ARGV[BASE + 2], tonumber(ARGV[BASE + 3])
local ties = 0
if after ~= '' then ties = redis.call('ZCOUNT', K_INBOX, maxs, maxs) end
local rows = redis.call('ZREVRANGEBYSCORE', K_INBOX, maxs, '-inf', 'WITHSCORES', 'LIMIT', 0, limit + ties + 1)
local out = {0, redis.call('SCARD', K_UNREAD), redis.call('HGET', K_META, 'epoch') or '-', '0-0'}
local last = redis.call('XREVRANGE', K_LOG, '+', '-', 'COUNT', 1)
if #last > 0 then out[4] = last[1][1] end
local max_n = tonumber(maxs)
for i = 1, #rows, 2 do
  local gid, score = rows[i], tonumber(rows[i + 1])
  if not (after ~= '' and score == max_n and gid >= after) then
    if #out - 4 == limit then
      out[1] = 1
      break
    end
    out[#out + 1] = cjson.encode(group_view(gid))
  end
end
return out
