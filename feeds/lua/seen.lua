-- Mark the inbox seen up to a time (ARGV after the head: ms, or '' for the newest group's): the
-- badge counts only groups newer than the mark (lua/common.lua unseen). Read state is untouched.
-- The mark only moves forward; a move is logged and pushed as a `seen` change, so a user's other
-- devices clear their badge too. Returns {unseen, the mark}.
local s = state()
local top = call('LINDEX', K_INBOX, '0')
local newest = top and unpack_ms(top) or 0
local at = ARGV[BASE + 1]
-- never past the newest group: what arrives later, even with an older time, is unseen
at = int((at == '' or tonumber(at) > newest) and newest or tonumber(at))
local old = call('HGET', K_MARKS, 'seen')
if old and tonumber(old) >= tonumber(at) then return {unseen(), old} end
call('HSET', K_MARKS, 'seen', at)
emit(OP_SEEN, at, seen_tail(at))
save()
return {unseen(), at}
