-- The changes after a cursor, rendered from the current views (the log keeps only what changed
-- and the unread count after it). ARGV: the cursor's epoch ('-': before the log), change number
-- and check (schemas/cursor.py), most changes to return (0: only the log's end).
-- Returns {'refetch', epoch, last number, last check} when the cursor names no change the log
-- still has (trimmed, past the end, another epoch's, or a number reused with another check) or
-- a change after it is gone, else {'replay', epoch, number of the first change returned,
-- check, json, check, json...}; with count 0, {'tail', epoch, last number, last check}.
local epoch, after, check = ARGV[BASE + 1], tonumber(ARGV[BASE + 2]), tonumber(ARGV[BASE + 3])
local count = tonumber(ARGV[BASE + 4])
local s = state()
if count == 0 then return {'tail', s.epoch or '-', s.seq, last_check()} end
-- before the log ('-') is only ever handed out as -.0-0: another number or check names nothing
local before_log = epoch == '-' and after == 0 and check == 0
if not s.epoch then
  if before_log then return {'replay', '-', 1} end
  return {'refetch', '-', 0, 0}
end
local function refetch() return {'refetch', s.epoch, s.seq, last_check()} end
if epoch ~= s.epoch and not before_log then return refetch() end
local first = s.seq - call('LLEN', K_LOG) + 1  -- the oldest change still logged
if after > s.seq or (after == 0 and first > 1) or (after > 0 and after < first) then return refetch() end
local from = after - first  -- the index of the cursor's own change (-1: 0, the log's start)
local entries = call('LRANGE', K_LOG, math.max(from, 0), from + count)
if from >= 0 and check_of(table.remove(entries, 1)) ~= check then return refetch() end
local out = {'replay', s.epoch, after + 1}
if #entries == 0 then return out end

-- Every change to a group renders its current view, once per group.
local found, missing = {}, 0
for i, entry in ipairs(entries) do
  local check, at = check_of(entry)
  local op, unread, ref = entry:match('^(%a)(%d+) (.*)$', at)
  entries[i] = {op, unread, ref, check}
  if op == OP_UPSERT and found[ref] == nil then
    found[ref], missing = false, missing + 1
  end
end
local former = {}
lookup(found, missing, former)
-- a change logged before a mention in a post took its id of today names it by the former one:
-- a client of then knows it so, and is told to reload rather than shown it twice
if next(former) then return refetch() end
local rendered, ids, groups, refs = {}, {}, {}, {}
for ref, rec in pairs(found) do
  if rec then
    groups[#groups + 1] = decode(rec)
    ids[#ids + 1], refs[#groups] = groups[#groups].gid, ref
  end
end
if #groups > 0 then
  local all, own = marks_of(ids)
  for i, g in ipairs(groups) do
    rendered[refs[i]] = view(g, g.t <= math.max(all, own[i]), true)
  end
end

for _, e in ipairs(entries) do
  local op, unread, ref = e[1], e[2], e[3]
  local tail
  if op == OP_FEED_PUSH or op == OP_FEED_DROP then  -- a home-feed change: feeds/changelog.py renders it
    tail = FEED_MARK .. op .. ref
  elseif op == OP_READ then
    tail = read_tail(ref)
  elseif op == OP_SEEN then
    tail = seen_tail(ref)
  else
    tail = op == OP_UPSERT and rendered[ref]
    if not tail then  -- a remove; or an upsert of a group removed since (a later change says so)
      op, tail = OP_REMOVE, ',"id":' .. jstr(long(ref)) .. '}'
    end
  end
  out[#out + 1] = e[4]
  out[#out + 1] = OPS[op] and change_json(op, unread, tail, '') or tail
end
return out
