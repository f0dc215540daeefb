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

// verifyScript: KEYS identity, challenge, not-before, and the challenge's
// breaker ref when it converts. ARGV now, sid, mac, budget, delay_base,
// delay_max, hard_limit, window, sealed subject, hard_lock, convert ('1':
// count a verified code as a conversion, breaker_convert), the breaker's
// key base. The sealed subject is written to the identity only with a
// lock-out. It returns the status, the attempts remaining, the failures,
// the lock-out's end, and the challenge's masked number, history list (hk),
// phone hash and gateway (gw) when it found the challenge: where the code
// went.
// ARGV[13] on are the entry sealed ahead (otp.VerifyHistory; history
// lists the last KEYS): how many lists (0: none), the phone hash, the
// list and the gateway the challenge must name, the entry's time, cut and
// keep (append_history), the entries for ok, wrong and exhausted, then each
// list's max. A ninth reply says whether the entry was kept.
// The conversion reaches scope keys that the ref names and KEYS does not:
// a server or Sentinel runs such a script, a Cluster would not, and there
// Store.Verify converts in a step of its own.
//
// The MAC comparison is constant time: a byte loop that XORs every byte
// whatever it finds, as crypto/subtle does.
var verifyScript = goredis.NewScript(identityPrelude + breakerFunctions + historyFunctions + `
local function ct_equal(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i)))
  end
  return diff == 0
end

local c = redis.call('HMGET', KEYS[2], 'sid', 'mac', 'attempts', 'max', 'exp', 'created', 'pm', 'hk', 'ph', 'gw')
local found = c[2] and (tonumber(c[5]) or 0) > now and c[1] == ARGV[2] and (tonumber(c[6]) or 0) >= not_before
local pm, hk, ph, gw = '', '', '', ''
if found then pm, hk, ph, gw = c[7] or '', c[8] or '', c[9] or '', c[10] or '' end
-- keep_entry keeps the entry sealed ahead at ARGV[at] when the challenge
-- names what it was sealed for: 1 if kept.
local function keep_entry(at)
  local n = tonumber(ARGV[13]) or 0
  if n == 0 or ph ~= ARGV[14] or hk ~= ARGV[15] or gw ~= ARGV[16] then return 0 end
  local lists = {}
  for i = 1, n do lists[i] = KEYS[#KEYS - n + i] end
  append_history(lists, ARGV[17], ARGV[at], ARGV[18], ARGV[19], 22, '')
  return 1
end
if now < locked then return {'locked', 0, failures, locked, pm, hk, ph, gw, 0} end
if not found then return {'notfound', 0, failures, 0, '', '', '', '', 0} end
local attempts = tonumber(c[3])
local max = tonumber(c[4])
if attempts >= max then
  redis.call('DEL', KEYS[2])
  return {'exhausted', 0, failures, 0, pm, hk, ph, gw, keep_entry(22)}
end
attempts = attempts + 1
if ct_equal(c[2], ARGV[3]) then
  redis.call('DEL', KEYS[2])
  failures = 0; fail_exp = 0; locked = 0
  sends = 0; send_exp = 0; next_send = 0
  save_identity()
  if ARGV[11] == '1' then breaker_convert(KEYS[4], now, ARGV[12]) end
  return {'ok', max - attempts, 0, 0, pm, hk, ph, gw, keep_entry(20)}
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
local status, entry = 'wrong', 21
if attempts >= max then
  redis.call('DEL', KEYS[2])
  status, entry = 'exhausted', 22
end
return {status, max - attempts, failures, locked, pm, hk, ph, gw, keep_entry(entry)}
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
