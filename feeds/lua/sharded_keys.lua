#!lua flags=allow-cross-slot-keys
-- A call spanning several users (apply, feed_push) on a Redis Cluster carries the users of several
-- slots of one master: it declares only its first user's keys (the call is routed by them; Redis
-- refuses declared keys of several slots), and the others' follow the script's own arguments,
-- then their count. They stay in ARGV (copying them into KEYS cost ~6,500 instructions per
-- applied item). ARGC: how many arguments are the script's own; NKEYS: the keys in all;
-- keys_at(k): the table holding the keys after the first k, and their offset in it.
-- (lua/declared_keys.lua: the same on one Redis.)
local EXTRA = tonumber(ARGV[#ARGV])
local ARGC, NKEYS = #ARGV - 1 - EXTRA, #KEYS + EXTRA
local function keys_at(k)
  if k < #KEYS then return KEYS, k end
  return ARGV, ARGC + k - #KEYS
end
