-- Helpers of the scripts that look groups up by id (mark_read, replay).

-- The short id of a record's group, without decoding the rest.
local function short_of(rec)
  local bar = rec:find('|', 8, true)
  if not bar then return rec:sub(8) end
  local s = rec:sub(8, bar - 1)
  if s ~= 'p' then return s end
  local actor, post = rec:match('^([^|]*)|([^|]*)|', bar + 1)
  return 'm' .. post .. '~' .. actor  -- MENTION_IN_POST (was ':' when frozen)
end

-- Fill `wanted` (short id -> false) with the records of those groups, looking through the inbox
-- newest first only as far as needed.
local function lookup(wanted, missing)
  local at, size = 0, 8  -- recent groups are on top: look at a few first, then more and more
  while missing > 0 do
    local chunk = redis.call('LRANGE', K_INBOX, at, at + size - 1)
    for _, rec in ipairs(chunk) do
      local id = short_of(rec)
      if wanted[id] == false then
        wanted[id], missing = rec, missing - 1
        if missing == 0 then return end
      end
    end
    if #chunk < size then return end
    at, size = at + size, size * 2
  end
end

-- The tail of a read change (see change_json): `*` (all), or the ids read separated by spaces.
local function read_tail(ids)
  if ids == '*' then return ',"all":true}' end
  local out = {}
  for id in ids:gmatch('[^ ]+') do out[#out + 1] = jstr(id) end
  return ',"groups":[' .. table.concat(out, ',') .. ']}'
end
