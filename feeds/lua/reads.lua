-- Helpers of the scripts that look groups up by id (mark_read, replay).

-- The short id of a record's group, without decoding the rest; for a mention in a post also
-- the one it had before its id took MENTION_IN_POST (2026-12-07), which log entries, read
-- requests and clients of then name it by.
local function short_of(rec)
  local bar = rec:find('|', 8, true)
  if not bar then return rec:sub(8) end
  local s = rec:sub(8, bar - 1)
  if s ~= 'p' then return s end
  local actor, post = rec:match('^([^|]*)|([^|]*)|', bar + 1)
  return 'm' .. post .. MENTION_IN_POST .. actor, 'm' .. post .. ':' .. actor
end

-- Fill `wanted` (short id -> false) with the records of those groups, looking through the inbox
-- newest first only as far as needed. An id no group has now may be a mention in a post's
-- former one: found so only after the whole inbox was looked through (a comment's mentions may
-- have that id now), and noted in `former`.
local function lookup(wanted, missing, former)
  local at, size, old_ones = 0, 8, {}  -- recent groups are on top: a few first, then more
  while missing > 0 do
    local chunk = call('LRANGE', K_INBOX, at, at + size - 1)
    for _, rec in ipairs(chunk) do
      local id, old = short_of(rec)
      if wanted[id] == false then
        wanted[id], missing = rec, missing - 1
        if missing == 0 then return end
      end
      if old and wanted[old] == false and not old_ones[old] then old_ones[old] = rec end
    end
    if #chunk < size then break end
    at, size = at + size, size * 2
  end
  for old, rec in pairs(old_ones) do
    if wanted[old] == false then
      wanted[old] = rec
      if former then former[old] = true end
    end
  end
end

-- The tail of a read change (see change_json): `*` (all), or the ids read separated by spaces.
local function read_tail(ids)
  if ids == '*' then return ',"all":true}' end
  local out = {}
  for id in ids:gmatch('[^ ]+') do out[#out + 1] = jstr(id) end
  return ',"groups":[' .. table.concat(out, ',') .. ']}'
end

-- The tail of a seen change: the seen mark (ms).
local function seen_tail(mark) return ',"seen_at":' .. mark .. '}' end
