-- The active items of the user's inbox that a mute or block hides (read-only): ARGV after the
-- head: 'actor' or 'post', then the actor's or the post's id. Looks at the groups in the inbox
-- (what the user can see), and for a like or follow group at the registers of its items.
-- Returns ITEM, TIME_MS, GROUP_ID, VERB, POST, ACTOR for each, flat.
local kind, wanted = ARGV[BASE + 1], ARGV[BASE + 2]
local out, asked, candidates = {}, {}, {}
local function found(item, t, g, actor)
  out[#out + 1] = item
  out[#out + 1] = int(t)
  out[#out + 1] = g.gid
  out[#out + 1] = g.verb
  out[#out + 1] = g.post or ''
  out[#out + 1] = actor
end
for _, rec in ipairs(call('LRANGE', K_INBOX, '0', '-1')) do
  local g = decode(rec)
  if g.single then
    if (kind == 'actor' and g.actor == wanted) or (kind == 'post' and g.post == wanted) then
      local item = g.comment and ((g.verb == 'comment' and 'c|' or 'm|c:') .. g.comment)
        or ('m|p:' .. g.post .. '|' .. g.actor)
      found(item, g.t, g, g.actor)
    end
  elseif kind == 'actor' then  -- the actor's item in this group, if theirs is active
    local item = g.verb == 'like' and ('l|' .. g.post .. '|' .. wanted) or ('f|' .. wanted)
    if not asked[item] then
      asked[item] = true
      candidates[#candidates + 1] = {item, g}
    end
  elseif g.post == wanted then  -- every actor of a like group on the post
    for _, member in ipairs(call('ZRANGE', A_PREFIX .. g.gid, '0', '-1')) do
      found('l|' .. wanted .. '|' .. member:sub(8), unpack_ms(member), g, member:sub(8))
    end
  end
end
if #candidates > 0 then
  local fields = {}
  for i, c in ipairs(candidates) do fields[i] = c[1] end
  local registers = call('HMGET', K_ITEMS, unpack(fields))
  for i, c in ipairs(candidates) do
    local reg = registers[i]
    if reg and reg:sub(1, 1) == 'a' then found(c[1], unpack_ms(reg:sub(2, MS_BYTES + 1)), c[2], wanted) end
  end
end
return out
