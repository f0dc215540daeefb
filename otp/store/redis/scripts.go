package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts hold every read-modify-write, so each store operation is
// one atomic step on the server (phone bindings, and a send's limits on a
// Cluster: a few ordered steps, described with their scripts below). The
// keys of one identity share a hash tag, so a Redis Cluster runs a script
// over them on one node. Times are
// Unix milliseconds passed in by the caller, whose clock decides expiry
// exactly as the memory store's does; key TTLs are set relative to that
// clock (PEXPIRE, not PEXPIREAT), so Redis drops a key once its record has
// expired by the caller's clock, even when a test's clock is not the wall
// clock.
//
// The keys of one identity share its tag, <prefix>{identity hash}:
//
//   :id      the identity, a hash:
//     failures, fail_exp, locked   consecutive wrong codes, when the count
//                                  is forgotten, lock-out end
//     sends, send_exp, next_send   codes sent, when the count is forgotten,
//                                  earliest next send
//     ssub                         the subject sealed by the service
//                                  (otp.Keys.SealSubject), written with a
//                                  lock-out and dropped by an unlock, the
//                                  first write after the lock-out ends,
//                                  or the key's expiry, so that an
//                                  operator can list who is locked out
//                                  while Redis never holds an identity in
//                                  clear
//     sub                          the subject in clear, as versions
//                                  before ssub wrote it: dropped by the
//                                  record's next write, an unlock or the
//                                  key's expiry
//     Its TTL runs until the last of fail_exp, send_exp and locked.
//   :ch:<id> a challenge, a hash (see sendScript), until it expires
//   :nb      the not-before (Store.Revoke), Unix milliseconds, with no TTL:
//            a revocation persists, as a binding does. Every script that
//            reads a challenge reads it too and treats a challenge created
//            before it as gone.
//   :bind    the phone binding (see below)

// identityPrelude loads the identity key with expired parts dropped, and the
// not-before. Its scripts take KEYS identity, challenge, not-before.
const identityPrelude = `
local now = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'failures', 'fail_exp', 'locked', 'sends', 'send_exp', 'next_send')
local failures = tonumber(st[1]) or 0
local fail_exp = tonumber(st[2]) or 0
local locked = tonumber(st[3]) or 0
local sends = tonumber(st[4]) or 0
local send_exp = tonumber(st[5]) or 0
local next_send = tonumber(st[6]) or 0
if now >= fail_exp then failures = 0; fail_exp = 0; locked = 0 end
if now >= send_exp then sends = 0; send_exp = 0; next_send = 0 end

local function save_identity()
  local last = math.max(fail_exp, send_exp, locked)
  if last <= now then
    redis.call('DEL', KEYS[1])
    return
  end
  redis.call('HSET', KEYS[1], 'failures', failures, 'fail_exp', fail_exp, 'locked', locked,
    'sends', sends, 'send_exp', send_exp, 'next_send', next_send)
  redis.call('HDEL', KEYS[1], 'sub')
  if locked <= now then redis.call('HDEL', KEYS[1], 'ssub') end
  redis.call('PEXPIRE', KEYS[1], last - now)
end

-- not_before is the identity's not-before (KEYS[3]); a challenge created
-- before it is gone.
local not_before = tonumber(redis.call('GET', KEYS[3])) or 0

local function doubling(k, base, max)
  local d = base
  local i = 0
  while i < k and d < max do d = d * 2; i = i + 1 end
  if d > max then d = max end
  return d
end
`

// sendScript is one send: KEYS identity, challenge, not-before, fallback
// challenge (the challenge again when there is none), then one counter per
// send limit (see limitFunctions). ARGV now, resend, max_sends,
// cooldown_base, cooldown_max, send_window, sid, ph, pm, mac, created, sent,
// exp, max_attempts, voice, max_calls, dry, fallback_mac, jitter (the
// thousandths of the cooldown added to it: otp.JitteredCooldown), then each
// limit's window field and max. It refuses with the first of: the lock-out, the
// cooldown, the challenge (gone without a fallback, or past its sends or
// calls), a limit at its max ({'limit', i}); and then nothing is written. A
// dry run stops there, writing nothing, with {'ok', mode}: that is the
// first step of a send on a Cluster, where the counters live in other
// slots (Store.Issue). Otherwise it raises every counter, writes the
// challenge and the identity's sends and cooldown, and returns {'ok',
// mode, the challenge's fields}, mode being 'resend' or 'create'.
var sendScript = goredis.NewScript(identityPrelude + limitFunctions + `
local resend = ARGV[2] == '1'
local voice = ARGV[15] == '1'
local dry = ARGV[17] == '1'
if now < locked then return {'locked', locked} end
if now < next_send then return {'cooldown', next_send} end
local exp = tonumber(ARGV[13])
if exp <= now then return redis.error_reply('challenge expires before now') end
local key, mac, mode = KEYS[2], ARGV[10], 'create'
if resend then
  local c = redis.call('HMGET', KEYS[2], 'sid', 'ph', 'attempts', 'max', 'sends', 'exp', 'created', 'calls')
  if not c[6] or tonumber(c[6]) <= now or c[1] ~= ARGV[7] or c[2] ~= ARGV[8]
    or tonumber(c[3]) >= tonumber(c[4]) or (tonumber(c[7]) or 0) < not_before then
    if ARGV[18] == '' then return {'notfound'} end
    key, mac = KEYS[4], ARGV[18]
  else
    if tonumber(c[5]) >= tonumber(ARGV[3]) then return {'sendlimit'} end
    if voice and (tonumber(c[8]) or 0) >= tonumber(ARGV[16]) then return {'calllimit'} end
    mode = 'resend'
  end
end
local counters = {}
for i = 5, #KEYS do counters[#counters + 1] = KEYS[i] end
local full = first_full(counters, 20)
if full > 0 then return {'limit', full} end
if dry then return {'ok', mode} end
raise_all(counters, 20)
if mode == 'resend' then
  redis.call('HSET', key, 'mac', mac, 'sent', ARGV[12], 'exp', ARGV[13], 'delivery', '', 'drank', 0)
  redis.call('HINCRBY', key, 'sends', 1)
  if voice then redis.call('HINCRBY', key, 'calls', 1) end
else
  local calls = 0
  if voice then calls = 1 end
  redis.call('HSET', key, 'sid', ARGV[7], 'ph', ARGV[8], 'pm', ARGV[9], 'mac', mac,
    'created', ARGV[11], 'sent', ARGV[12], 'exp', ARGV[13], 'sends', 1, 'attempts', 0, 'max', ARGV[14],
    'calls', calls, 'delivery', '', 'drank', 0)
end
redis.call('PEXPIRE', key, exp - now)
sends = sends + 1
send_exp = now + tonumber(ARGV[6])
local cooldown = doubling(sends - 1, tonumber(ARGV[4]), tonumber(ARGV[5]))
next_send = now + cooldown + math.floor(cooldown * tonumber(ARGV[19]) / 1000)
save_identity()
return {'ok', mode, redis.call('HGETALL', key)}
`)

// verifyScript: KEYS identity, challenge, not-before. ARGV now, sid, mac,
// budget, delay_base, delay_max, hard_limit, window, sealed subject,
// hard_lock. The sealed subject is written to the identity only with a
// lock-out.
//
// The MAC comparison is constant time: a byte loop that XORs every byte
// whatever it finds, as crypto/subtle does.
var verifyScript = goredis.NewScript(identityPrelude + `
local function ct_equal(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i)))
  end
  return diff == 0
end

if now < locked then return {'locked', 0, failures, locked} end
local c = redis.call('HMGET', KEYS[2], 'sid', 'mac', 'attempts', 'max', 'exp', 'created')
if not c[2] or tonumber(c[5]) <= now or c[1] ~= ARGV[2] or (tonumber(c[6]) or 0) < not_before then
  return {'notfound', 0, failures, 0}
end
local attempts = tonumber(c[3])
local max = tonumber(c[4])
if attempts >= max then
  redis.call('DEL', KEYS[2])
  return {'exhausted', 0, failures, 0}
end
attempts = attempts + 1
if ct_equal(c[2], ARGV[3]) then
  redis.call('DEL', KEYS[2])
  failures = 0; fail_exp = 0; locked = 0
  sends = 0; send_exp = 0; next_send = 0
  save_identity()
  return {'ok', max - attempts, 0, 0}
end
redis.call('HSET', KEYS[2], 'attempts', attempts)
local budget = tonumber(ARGV[4])
local hard = tonumber(ARGV[7])
local window = tonumber(ARGV[8])
failures = failures + 1
fail_exp = now + window
if failures >= hard then
  -- The hard lock, and the count kept as long: waiting never buys
  -- another 100 tries.
  locked = now + tonumber(ARGV[10])
  fail_exp = locked
elseif failures >= budget then
  locked = now + doubling(failures - budget, tonumber(ARGV[5]), tonumber(ARGV[6]))
end
save_identity()
if locked > now and ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'ssub', ARGV[9]) end
local status = 'wrong'
if attempts >= max then
  redis.call('DEL', KEYS[2])
  status = 'exhausted'
end
return {status, max - attempts, failures, locked}
`)

// challengeScript: KEYS challenge, not-before. Returns the challenge's
// fields, or none if it was created before the not-before. Expiry is the
// caller's to check.
var challengeScript = goredis.NewScript(`
local c = redis.call('HGETALL', KEYS[1])
if #c == 0 then return c end
local not_before = tonumber(redis.call('GET', KEYS[2])) or 0
if (tonumber(redis.call('HGET', KEYS[1], 'created')) or 0) < not_before then return {} end
return c
`)

// revokeScript: KEYS not-before. ARGV not-before. Moves the not-before
// forward, never back; the key has no TTL. Returns 1 if it moved.
var revokeScript = goredis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1])) or 0
local nb = tonumber(ARGV[1])
if nb <= cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`)

// unlockScript: KEYS identity. Forgets the failures and the lock-out and
// keeps the sends. The caller passes no time (Store.Unlock has none), so
// the key's TTL, which runs until the last of fail_exp, send_exp and locked
// as the hash holds them, is shortened by as much as that last end exceeds
// send_exp: the key then lives until send_exp, as save_identity would have
// it. When the sends are no longer counted either, the key goes.
var unlockScript = goredis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
local st = redis.call('HMGET', KEYS[1], 'fail_exp', 'locked', 'send_exp')
local fail_exp = tonumber(st[1]) or 0
local locked = tonumber(st[2]) or 0
local send_exp = tonumber(st[3]) or 0
local last = math.max(fail_exp, locked, send_exp)
if ttl >= 0 then
  ttl = ttl - (last - send_exp)
  if ttl <= 0 then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
redis.call('HSET', KEYS[1], 'failures', 0, 'fail_exp', 0, 'locked', 0)
redis.call('HDEL', KEYS[1], 'sub', 'ssub')
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`)

// deliveryScript: KEYS challenge. ARGV status, rank. Records a delivery
// report on a live challenge unless a later status is already there.
var deliveryScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local rank = tonumber(redis.call('HGET', KEYS[1], 'drank')) or 0
if tonumber(ARGV[2]) <= rank then return 0 end
redis.call('HSET', KEYS[1], 'delivery', ARGV[1], 'drank', ARGV[2])
return 1
`)

// Send limits. Each counter (a limit name and key) is one hash whose
// fields are its fixed windows, named "<start>:<end>" in Unix milliseconds,
// so ResetLimit is one DEL. Windows that have ended are pruned whenever the
// counter is raised, and the key's TTL runs until the last window ends.
// Each counter has a hash tag of its own, so counters spread over a
// Cluster. One server (or Sentinel's master) runs a script over keys of any
// tag, so there sendScript counts every limit of a send with the rest of
// the send, and limitsScript every limit of an operator's test message: one
// step each. A Cluster runs a script on one slot only, so there Store.Issue
// and Store.Limit raise one counter per limitsScript and undo the raises of
// a refused send with refundScript.

// limitFunctions decide and count the limits of one send: counters are
// keys, and their window fields and maxes are ARGV pairs from index at.
// first_full returns the 1-based index of the first counter at its max, or
// 0; raise_all raises every counter. They expect now.
const limitFunctions = `
local function first_full(counters, at)
  for i, key in ipairs(counters) do
    local field, max = ARGV[at + 2 * (i - 1)], tonumber(ARGV[at + 2 * (i - 1) + 1])
    if (tonumber(redis.call('HGET', key, field)) or 0) >= max then return i end
  end
  return 0
end

local function window_end(f) return tonumber(string.match(f, ':(%d+)$')) or 0 end

local function raise_all(counters, at)
  for i, key in ipairs(counters) do
    local field = ARGV[at + 2 * (i - 1)]
    local last = window_end(field)
    for _, f in ipairs(redis.call('HKEYS', key)) do
      local e = window_end(f)
      if e <= now then
        redis.call('HDEL', key, f)
      elseif e > last then
        last = e
      end
    end
    redis.call('HINCRBY', key, field, 1)
    redis.call('PEXPIRE', key, last - now)
  end
end
`

// limitsScript: KEYS counters. ARGV now, then each counter's window field
// and max. Raises every counter if none is at its max and returns 0;
// otherwise raises none and returns the 1-based index of the first full one.
var limitsScript = goredis.NewScript(`
local now = tonumber(ARGV[1])
` + limitFunctions + `
local full = first_full(KEYS, 2)
if full > 0 then return full end
raise_all(KEYS, 2)
return 0
`)

// refundScript: KEYS counter. ARGV window field. Lowers a count raised by
// limitsScript; a window that is gone (ended, or reset) stays gone.
var refundScript = goredis.NewScript(`
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if not n then return 0 end
if n <= 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
end
return 1
`)

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
