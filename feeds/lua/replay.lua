-- The changes after a cursor, rendered from the current views (the log keeps only what changed
-- and the unread count after it). ARGV: the cursor's epoch ('-': before the log) and change
-- number, most changes to return.
-- Returns {'refetch', epoch, last number} when a change after the cursor is gone (trimmed, or
-- another epoch's log), else {'replay', epoch, number of the first change returned, json...}.
local epoch, after, count = ARGV[BASE + 1], tonumber(ARGV[BASE + 2]), tonumber(ARGV[BASE + 3])
local s = state()
if not s.epoch then
  if epoch == '-' then return {'replay', '-', 1} end
  return {'refetch', '-', 0}
end
if epoch == '-' then
  after = 0
elseif epoch ~= s.epoch then
  return {'refetch', s.epoch, s.seq}
end
local first = s.seq - redis.call('LLEN', K_LOG) + 1  -- the oldest change still logged
if after < first - 1 then return {'refetch', s.epoch, s.seq} end
local out = {'replay', s.epoch, after + 1}
if after >= s.seq then return out end

-- Every change to a group renders its current view, once per group.
local entries = redis.call('LRANGE', K_LOG, after - first + 1, after - first + count)
local found, missing = {}, 0
for i, entry in ipairs(entries) do
  local op, unread, ref = entry:match('^(%a)(%d+) (.*)$')
  entries[i] = {op, unread, ref}
  if op == 'u' and found[ref] == nil then
    found[ref], missing = false, missing + 1
  end
end
lookup(found, missing)
local rendered, ids, groups = {}, {'*'}, {}
for id, rec in pairs(found) do
  if rec then
    groups[#groups + 1] = decode(rec)
    ids[#ids + 1] = groups[#groups].gid
  end
end
if #groups > 0 then
  local marks = redis.call('HMGET', K_MARKS, unpack(ids))  -- the read-all mark, then each group's
  local all = tonumber(marks[1] or '0')
  for i, g in ipairs(groups) do
    rendered[short(g.gid)] = ',"group":' .. view(g, g.t <= math.max(all, tonumber(marks[i + 1] or '0'))) .. '}'
  end
end

for _, e in ipairs(entries) do
  local op, unread, ref = e[1], e[2], e[3]
  local tail
  if op == 'r' then
    tail = read_tail(ref)
  else
    tail = op == 'u' and rendered[ref]
    if not tail then  -- a remove; or an upsert of a group removed since (a later change says so)
      op, tail = 'd', ',"id":' .. jstr(long(ref)) .. '}'
    end
  end
  out[#out + 1] = change_json(op, unread, tail)
end
return out
