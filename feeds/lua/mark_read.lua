-- Mark groups read: ARGV mode ('all' | 'ids'), then group ids. Idempotent: nothing already
-- read is logged again. Read marks are event times: a group is read while its time is not
-- after its mark and the read-all mark `*`.
local s = state()
if ARGV[BASE + 1] == 'all' then
  if s.unread == 0 then return 0 end
  local top = call('LINDEX', K_INBOX, 0)  -- the newest group: every group is read as of its time
  if top then
    local t = unpack_ms(top)
    if t > read_all() then
      call('HSET', K_MARKS, '*', int(t))
      s.all = t  -- the state's summary, saved below
    end
  end
  local n = s.unread
  add_unread(-n)
  emit(OP_READ, '*', read_tail('*'))
  save()
  return n
end
-- the groups asked for, found newest first
local found, missing = {}, 0
for i = BASE + 2, #ARGV do
  local gid = ARGV[i]
  if gid:find(':', 1, true) and found[short(gid)] == nil then
    found[short(gid)], missing = false, missing + 1
  end
end
lookup(found, missing)
local live = {}  -- by the short id asked for (a mention in a post's former one included)
for ref, rec in pairs(found) do
  if rec then live[ref] = decode(rec) end
end
local done = {}
for i = BASE + 2, #ARGV do
  local g = ARGV[i]:find(':', 1, true) and live[short(ARGV[i])]
  if g and g.t > mark(g.gid) then
    call('HSET', K_MARKS, g.gid, int(g.t))
    s.groups = true  -- the state's summary (mark() learned it), saved below
    add_unread(-1)
    done[#done + 1] = g.gid
  end
end
if #done == 0 then return 0 end
local ids = table.concat(done, ' ')
emit(OP_READ, ids, read_tail(ids))
save()
return #done
