-- Apply one item to one user's inbox: a last-writer-wins register per item, so applying the
-- same event twice, or a set of events in any order, ends in the same views.
-- ARGV: item, state (a active | i inactive | x retracted for good), time ms, event id,
--       group id, actor, verb, post, comment, text, maintain followers (1|0)
local item, state, ts, eid = ARGV[BASE + 1], ARGV[BASE + 2], tonumber(ARGV[BASE + 3]), ARGV[BASE + 4]
local gid, actor, verb = ARGV[BASE + 5], ARGV[BASE + 6], ARGV[BASE + 7]
local post, comment, text, follows = ARGV[BASE + 8], ARGV[BASE + 9], ARGV[BASE + 10], ARGV[BASE + 11]

local old = redis.call('HGET', K_TOG, item)
local old_state, old_gid, old_actor = 'none', '', actor
if old then
  -- the register keeps the actor who made the item active: a retraction may come from someone
  -- else (the post owner deleting a comment)
  local s, t, e, g, a = string.match(old, '^(%a)|(%-?%d+)|([^|]*)|([^|]*)|(.*)$')
  if s == 'x' then return 0 end
  if state ~= 'x' then
    t = tonumber(t)
    if ts < t or (ts == t and eid <= e) then return 0 end
  end
  old_state, old_gid, old_actor = s, g, a
end

local new_gid = ''
if state == 'a' then new_gid = gid end
if follows == '1' then
  if state == 'a' then redis.call('SADD', K_FOLLOWERS, actor) else redis.call('SREM', K_FOLLOWERS, actor) end
end
if old_state == 'a' and (old_gid ~= new_gid or old_actor ~= actor) then
  redis.call('ZREM', A_PREFIX .. old_gid, old_actor)
  if old_gid ~= new_gid then refresh(old_gid) end  -- else the same group is refreshed below
end
if state == 'a' then
  local fields = {'v', verb}
  if post ~= '' then fields[#fields + 1] = 'p'; fields[#fields + 1] = post end
  if comment ~= '' then fields[#fields + 1] = 'c'; fields[#fields + 1] = comment end
  if text ~= '' then fields[#fields + 1] = 'x'; fields[#fields + 1] = text end
  redis.call('HSET', G_PREFIX .. gid, unpack(fields))
  redis.call('ZADD', A_PREFIX .. gid, ts, actor)
  refresh(gid)
  enforce_cap()
end
-- the register is the 'already applied' mark, so it is written last: a script that fails
-- part-way (WRONGTYPE, OOM) leaves it unset and the redelivery applies the item again
redis.call('HSET', K_TOG, item, state .. '|' .. ARGV[BASE + 3] .. '|' .. eid .. '|' .. new_gid .. '|' .. actor)
return 1
