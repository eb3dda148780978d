-- Trim a user's item registers that nothing can bring back (feeds/horizon.py): older than the
-- cutoff, and not behind anything the inbox shows. Kept: a register newer than the cutoff, the
-- register of a like or follow whose actor is in its group's set, of a comment or mention whose
-- record is in the inbox, and every retraction (`x`: deletion wins, whatever comes later).
-- The user's watermark (field `<`, 7 bytes like every time, the cap's floor after them if the
-- cap dropped a group; all zero, below every time, until a first trim: common.lua) rises to
-- the cutoff first, in the same atomic call: apply.lua refuses an event at or below it for an
-- item without a register, which is what a trimmed register would have decided (or an event
-- beyond the horizon).
-- ARGV after the head: cutoff ms, HSCAN cursor, count. Returns {next cursor, registers deleted}.
local CUTOFF, CURSOR, COUNT = tonumber(ARGV[BASE + 1]), ARGV[BASE + 2], ARGV[BASE + 3]
local WATERMARK = HORIZON_FIELD  -- schemas/layouts.py

if call('EXISTS', K_ITEMS) == 0 then return {'0', 0} end  -- nothing to trim, nor to mark
local mark = call('HGET', K_ITEMS, WATERMARK)
if mark and unpack_ms(mark) >= CUTOFF then
  CUTOFF = unpack_ms(mark)
else  -- the cap's floor after it stays (common.lua below_floor)
  call('HSET', K_ITEMS, WATERMARK, pack_ms(CUTOFF) .. (mark and mark:sub(MS_BYTES + 1) or ''))
end

-- Whether the active register `reg` of `item` (time `t`) is behind what the inbox shows.
local function shown(item, reg, t)
  local kind = item:sub(1, 1)
  if kind == 'l' or kind == 'f' then
    local window = reg:match('^[^|]*|(.*)$', MS_BYTES + 2)
    if not window then return false end
    local gid = kind == 'l' and 'like:' .. item:match('^l|(.*)|') .. ':' .. window or 'follow:' .. window
    return call('ZSCORE', A_PREFIX .. gid, pack_ms(t) .. item:match('[^|]*$')) ~= false
  end
  local gid
  if kind == 'c' then
    gid = 'comment:' .. item:sub(3)
  elseif item:sub(3, 4) == 'c:' then
    gid = 'mention:' .. item:sub(5)
  else
    gid = 'mention:' .. item:match('^m|p:(.*)|') .. MENTION_IN_POST .. item:match('[^|]*$')
  end
  return find(t, gid) ~= nil
end

local reply = call('HSCAN', K_ITEMS, CURSOR, 'COUNT', COUNT)
local rows, gone = reply[2], {}
for i = 1, #rows, 2 do
  local item, reg = rows[i], rows[i + 1]
  local st = reg:sub(1, 1)
  if #reg >= 8 and (st == 'i' or st == 'a') and item:sub(2, 2) == '|' then
    local t = unpack_ms(reg:sub(2, 8))
    if t < CUTOFF and (st == 'i' or not shown(item, reg, t)) then gone[#gone + 1] = item end
  end
end
if #gone > 0 then call('HDEL', K_ITEMS, unpack(gone)) end
return {reply[1], #gone}
