#!lua flags=allow-cross-slot-keys
-- On a Redis Cluster an apply call carries the items of several slots of one master: it declares
-- only its first item's keys (the call is routed by them; Redis refuses declared keys of several
-- slots), and the others follow the items in ARGV, then their count. Put them back in KEYS.
local extra = tonumber(table.remove(ARGV))
local first = #ARGV - extra + 1
for i = first, #ARGV do KEYS[#KEYS + 1] = ARGV[i] end
for i = #ARGV, first, -1 do ARGV[i] = nil end
