-- A call spanning several users (apply, feed_push) on one Redis declares every user's keys: see
-- lua/sharded_keys.lua for ARGC, NKEYS and keys_at.
local ARGC, NKEYS = #ARGV, #KEYS
local function keys_at(k) return KEYS, k end
