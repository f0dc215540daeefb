package redis

import goredis "github.com/redis/go-redis/v9"

// Phone bindings. Two kinds of key, in different slots, neither with a TTL:
//
//   <prefix>{identity}:bind  a hash under the identity's tag:
//     ph, sealed, pm, at   the bound number (hash, sealed, masked, bound at)
//     seq                  a counter: each bind or unbind attempt draws one
//     bseq                 the seq of the last bind or unbind that applied
//     p:<phone hash>       a claim this identity made (or is about to make)
//                          on that number's index, with the highest seq
//                          that made it
//   <prefix>num:{number}     a hash: identity hash -> highest seq of the
//                            claim that identity holds on the number
//
// A bind runs as ordered single-slot steps: (1) reserveScript draws a seq
// and records the claim it is about to make; (2) claimScript adds the
// identity to the number's index if fewer than max others are there; (3)
// bindScript writes the binding unless a later bind or unbind of the same
// identity already applied; (4) releaseScript, for each claim recorded with
// a seq below the binding now in effect (the old number's, and those of
// attempts that lost a race or died half way), removes the identity from
// that index if its claim there is no newer, and forgetScript drops the
// record. An attempt that step 3 finds stale releases its own claim as well:
// the attempt that won may have released before that claim landed.
//
// Invariant: if an identity is bound to a number with seq t, that number's
// index holds the identity with a claim of at least t. A held claim only
// grows; it is released only when it is at most some x below the bseq in
// effect at the time, and bseq only grows, so the claim behind the binding
// in effect (at least t >= bseq > x) is never the one released. Hence a number never has more
// bound identities than its index has members, and claimScript keeps those
// to max. A crash or lost reply between steps leaves a claim with no
// binding behind it: the number looks fuller than it is (it refuses more,
// never less) until the identity's next bind or unbind, which finds the
// claim recorded in step 1 and releases it.

// reserveScript: KEYS bind. ARGV phone hash. Returns the attempt's seq.
var reserveScript = goredis.NewScript(`
local s = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'p:' .. ARGV[1], s)
return s
`)

// claimScript: KEYS number index. ARGV identity hash, seq, max. Returns 1
// if the identity holds a claim on the number now, 0 if max others do.
var claimScript = goredis.NewScript(`
local s = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if cur then
  if s > cur then redis.call('HSET', KEYS[1], ARGV[1], s) end
  return 1
end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], s)
return 1
`)

// pendingBelow lists the claims recorded in the bind key with a seq below
// bseq, as phone hash, seq pairs.
const pendingBelow = `
local function pending_below(bseq)
  local out = {}
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'p:' and tonumber(all[i + 1]) < bseq then
      out[#out + 1] = string.sub(all[i], 3)
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end
`

// bindScript: KEYS bind. ARGV seq, phone hash, sealed, masked, at. Returns
// 'ok' or 'stale' and the claims to release.
var bindScript = goredis.NewScript(pendingBelow + `
local s = tonumber(ARGV[1])
local bseq = tonumber(redis.call('HGET', KEYS[1], 'bseq')) or 0
local status = 'stale'
if s > bseq then
  redis.call('HSET', KEYS[1], 'bseq', s, 'ph', ARGV[2], 'sealed', ARGV[3], 'pm', ARGV[4], 'at', ARGV[5])
  bseq = s
  status = 'ok'
end
return {status, pending_below(bseq)}
`)

// unbindScript: KEYS bind. Removes the binding, draws a seq so that no
// earlier attempt can still apply, and returns the claims to release.
var unbindScript = goredis.NewScript(pendingBelow + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local s = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'bseq', s)
redis.call('HDEL', KEYS[1], 'ph', 'sealed', 'pm', 'at')
return pending_below(s)
`)

// releaseScript: KEYS number index. ARGV identity hash, seq. Removes the
// identity's claim if it is no newer than seq.
var releaseScript = goredis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if cur and cur <= tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// forgetScript: KEYS bind. ARGV phone hash, seq. Drops the record of a
// claim unless a newer attempt on the same number has replaced it.
var forgetScript = goredis.NewScript(`
local f = 'p:' .. ARGV[1]
if redis.call('HGET', KEYS[1], f) == ARGV[2] then
  redis.call('HDEL', KEYS[1], f)
  return 1
end
return 0
`)
