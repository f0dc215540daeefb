package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts hold every read-modify-write, so each store operation is
// one atomic step on the server, and both keys of an operation share the
// identity's hash tag, so a Redis Cluster runs it on one node. Times are
// Unix milliseconds passed in by the caller, whose clock decides expiry
// exactly as the memory store's does; key TTLs are set relative to that
// clock (PEXPIRE, not PEXPIREAT), so Redis drops a key once its record has
// expired by the caller's clock, even when a test's clock is not the wall
// clock.
//
// The identity key is a hash:
//   failures, fail_exp, locked   consecutive wrong codes, when the count is
//                                forgotten, lock-out end
//   sends, send_exp, next_send   codes sent, when the count is forgotten,
//                                earliest next send
// Its TTL runs until the last of fail_exp, send_exp and locked.

// identityPrelude loads the identity key with expired parts dropped.
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
  redis.call('PEXPIRE', KEYS[1], last - now)
end

local function doubling(k, base, max)
  local d = base
  local i = 0
  while i < k and d < max do d = d * 2; i = i + 1 end
  if d > max then d = max end
  return d
end
`

// issueScript: KEYS identity, challenge. ARGV now, resend, max_sends,
// cooldown_base, cooldown_max, send_window, sid, ph, pm, mac, created,
// sent, exp, max_attempts, voice, max_calls.
var issueScript = goredis.NewScript(identityPrelude + `
local resend = ARGV[2] == '1'
local voice = ARGV[15] == '1'
local max_sends = tonumber(ARGV[3])
if now < locked then return {'locked', locked} end
if now < next_send then return {'cooldown', next_send} end
local exp = tonumber(ARGV[13])
if exp <= now then return redis.error_reply('challenge expires before now') end
if resend then
  local c = redis.call('HMGET', KEYS[2], 'sid', 'ph', 'attempts', 'max', 'sends', 'exp')
  if not c[6] or tonumber(c[6]) <= now or c[1] ~= ARGV[7] or c[2] ~= ARGV[8]
    or tonumber(c[3]) >= tonumber(c[4]) then
    return {'notfound'}
  end
  if tonumber(c[5]) >= max_sends then return {'sendlimit'} end
  if voice and (tonumber(redis.call('HGET', KEYS[2], 'calls')) or 0) >= tonumber(ARGV[16]) then
    return {'calllimit'}
  end
  redis.call('HSET', KEYS[2], 'mac', ARGV[10], 'sent', ARGV[12], 'exp', ARGV[13], 'delivery', '', 'drank', 0)
  redis.call('HINCRBY', KEYS[2], 'sends', 1)
  if voice then redis.call('HINCRBY', KEYS[2], 'calls', 1) end
else
  local calls = 0
  if voice then calls = 1 end
  redis.call('HSET', KEYS[2], 'sid', ARGV[7], 'ph', ARGV[8], 'pm', ARGV[9], 'mac', ARGV[10],
    'created', ARGV[11], 'sent', ARGV[12], 'exp', ARGV[13], 'sends', 1, 'attempts', 0, 'max', ARGV[14],
    'calls', calls, 'delivery', '', 'drank', 0)
end
redis.call('PEXPIRE', KEYS[2], exp - now)
sends = sends + 1
send_exp = now + tonumber(ARGV[6])
next_send = now + doubling(sends - 1, tonumber(ARGV[4]), tonumber(ARGV[5]))
save_identity()
return {'ok', redis.call('HGETALL', KEYS[2])}
`)

// verifyScript: KEYS identity, challenge. ARGV now, sid, mac, budget,
// delay_base, delay_max, hard_limit, window.
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
local c = redis.call('HMGET', KEYS[2], 'sid', 'mac', 'attempts', 'max', 'exp')
if not c[2] or tonumber(c[5]) <= now or c[1] ~= ARGV[2] then
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
  locked = now + window
elseif failures >= budget then
  locked = now + doubling(failures - budget, tonumber(ARGV[5]), tonumber(ARGV[6]))
end
save_identity()
local status = 'wrong'
if attempts >= max then
  redis.call('DEL', KEYS[2])
  status = 'exhausted'
end
return {status, max - attempts, failures, locked}
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
