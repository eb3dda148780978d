-- One page of the inbox, newest first. ARGV: the time and id of the previous page's last
-- group ('' for the first page), page size.
-- Returns {more, unread, epoch, last change number and check, unseen, seen mark, group json...}.
local before_t, before_id, limit = ARGV[BASE + 1], ARGV[BASE + 2], tonumber(ARGV[BASE + 3])
local s = state()
local start = 0
if before_id ~= '' then start = seek(tonumber(before_t), before_id, true) end
local rows = call('LRANGE', K_INBOX, start, start + limit)  -- one more: is there a next page?
local out = {0, s.unread, s.epoch or '-', s.seq, s.epoch and last_check() or 0, unseen(),
  call('HGET', K_MARKS, 'seen') or '0'}
local groups, ids = {}, {}
for i = 1, math.min(#rows, limit) do
  groups[i] = decode(rows[i])
  ids[i] = groups[i].gid
end
if #groups > 0 then
  local all, own = marks_of(ids)
  for i, g in ipairs(groups) do
    out[#out + 1] = view(g, g.t <= math.max(all, own[i]))
  end
end
if #rows > limit then out[1] = 1 end
return out
