package redis

import goredis "github.com/redis/go-redis/v9"

// sendScript is one send: KEYS identity, challenge, not-before, fallback
// challenge (the challenge again when there is none), then one counter per
// send limit (see limitFunctions), then, when the breaker is part of the
// send, the breaker refs of the challenge and of the fallback, the blocks
// list and one key per breaker scope (see breaker.go). ARGV now, resend,
// max_sends, cooldown_base, cooldown_max, send_window, sid, ph, pm, mac,
// created, sent, exp, max_attempts, voice, max_calls, dry, fallback_mac,
// jitter (the thousandths of the cooldown added to it:
// otp.JitteredCooldown), hk (the history list of the number's prefix, kept
// with the challenge), the number of limits, each limit's window field and
// max, then the number of breaker scopes (0: none), and when there are any
// the breaker's params (breakerParams) and the scope names; then the
// number of history lists the send's entry goes in (0: none; then KEYS
// ends with them) and, when there are any, the entry's time, data, cut and
// keep (append_history), the gateway the challenge notes, the entry of
// the send refused by the cooldown (empty for none), and each list's max. It refuses with the first of: a breaker scope blocked ({'blocked',
// i, until, level}), the lock-out, the cooldown, the challenge (gone
// without a fallback, or past its sends or calls), a limit at its max
// ({'limit', i}); and then nothing is written. The cooldown, limit and
// call-cap refusals of a resend also return the challenge it names as
// challengeScript would (shown: its fields, or none), for the page; the
// cooldown's keeps the entry of the send it refused, when there is one,
// and returns {'cooldown', next_send, shown, 1 if it kept it}. A dry run stops there, writing nothing, with {'ok', mode}:
// that is the first step of a send on a Cluster, where the counters and
// the breaker live in other slots (Store.Issue). Otherwise it raises every
// counter, writes the challenge and the identity's sends and cooldown,
// counts the send in the breaker's scopes, keeps the history entry when
// the challenge written is the one named (not a fallback) and notes its
// gateway on it, and returns {'ok', mode, the challenge's fields, the
// blocks the count set (breaker_count), 1 if it kept the entry}, mode
// being 'resend' or 'create'. On one server or Sentinel that is the whole
// send's decision and counting: one round trip.
var sendScript = goredis.NewScript(identityPrelude + limitFunctions + breakerFunctions + historyFunctions + `
local resend = ARGV[2] == '1'
local voice = ARGV[15] == '1'
local dry = ARGV[17] == '1'
local nlim = tonumber(ARGV[21])
local bi = 22 + 2 * nlim
local nscopes = tonumber(ARGV[bi])
local scope_keys, scope_names = {}, {}
for i = 1, nscopes do
  scope_keys[i] = KEYS[7 + nlim + i]
  scope_names[i] = ARGV[bi + 8 + i]
end
local hi, hk = bi + 1, 5 + nlim
if nscopes > 0 then hi, hk = bi + 9 + nscopes, 8 + nlim + nscopes end
local hist_lists = {}
for i = 1, tonumber(ARGV[hi]) do hist_lists[i] = KEYS[hk + i - 1] end
local function shown()
  if not resend then return {} end
  local c = redis.call('HGETALL', KEYS[2])
  if #c == 0 then return c end
  if (tonumber(redis.call('HGET', KEYS[2], 'created')) or 0) < not_before then return {} end
  return c
end
if nscopes > 0 then
  local i, till, level = breaker_blocked(scope_keys, now)
  if i > 0 then return {'blocked', i, till, level} end
end
if now < locked then return {'locked', locked} end
if now < next_send then
  local kept_refusal = 0
  if #hist_lists > 0 and ARGV[hi + 6] ~= '' then
    append_history(hist_lists, ARGV[hi + 1], ARGV[hi + 6], ARGV[hi + 3], ARGV[hi + 4], hi + 6, '')
    kept_refusal = 1
  end
  return {'cooldown', next_send, shown(), kept_refusal}
end
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
    if voice and (tonumber(c[8]) or 0) >= tonumber(ARGV[16]) then return {'calllimit', shown()} end
    mode = 'resend'
  end
end
local counters = {}
for i = 5, 4 + nlim do counters[#counters + 1] = KEYS[i] end
local full = first_full(counters, 22)
if full > 0 then return {'limit', full, shown()} end
if dry then return {'ok', mode} end
raise_all(counters, 22)
local kept = #hist_lists > 0 and key == KEYS[2]
local gw = kept and ARGV[hi + 5] or ''
if mode == 'resend' then
  redis.call('HSET', key, 'mac', mac, 'sent', ARGV[12], 'exp', ARGV[13], 'delivery', '', 'drank', 0, 'hk', ARGV[20], 'gw', gw)
  redis.call('HINCRBY', key, 'sends', 1)
  if voice then redis.call('HINCRBY', key, 'calls', 1) end
else
  local calls = 0
  if voice then calls = 1 end
  redis.call('HSET', key, 'sid', ARGV[7], 'ph', ARGV[8], 'pm', ARGV[9], 'mac', mac,
    'created', ARGV[11], 'sent', ARGV[12], 'exp', ARGV[13], 'sends', 1, 'attempts', 0, 'max', ARGV[14],
    'calls', calls, 'delivery', '', 'drank', 0, 'hk', ARGV[20], 'gw', gw)
end
redis.call('PEXPIRE', key, exp - now)
sends = sends + 1
send_exp = now + tonumber(ARGV[6])
local cooldown = doubling(sends - 1, tonumber(ARGV[4]), tonumber(ARGV[5]))
next_send = now + cooldown + math.floor(cooldown * tonumber(ARGV[19]) / 1000)
save_identity()
local blocks = {}
if nscopes > 0 then
  local p = {}
  for j = 1, 8 do p[j] = tonumber(ARGV[bi + j]) end
  local ref = KEYS[5 + nlim]
  if resend and mode == 'create' then ref = KEYS[6 + nlim] end
  blocks = breaker_count(ref, KEYS[7 + nlim], scope_keys, scope_names, now, p)
end
local kept_flag = 0
if kept then
  append_history(hist_lists, ARGV[hi + 1], ARGV[hi + 2], ARGV[hi + 3], ARGV[hi + 4], hi + 6, '')
  kept_flag = 1
end
return {'ok', mode, redis.call('HGETALL', key), blocks, kept_flag}
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
// 0; raise_all raises every counter. They expect now. first_full reads
// each counter whole (HGETALL: a counter holds a window or two) and leaves
// its field names for raise_all, which prunes the ended windows by them
// instead of asking again (HKEYS): one command per counter fewer, six per
// send. raise_all takes each key's names once; a key named twice is asked
// again.
const limitFunctions = `
local limit_fields = {}

local function first_full(counters, at)
  for i, key in ipairs(counters) do
    local field, max = ARGV[at + 2 * (i - 1)], tonumber(ARGV[at + 2 * (i - 1) + 1])
    local all = redis.call('HGETALL', key)
    local names, n = {}, 0
    for j = 1, #all, 2 do
      names[#names + 1] = all[j]
      if all[j] == field then n = tonumber(all[j + 1]) or 0 end
    end
    limit_fields[key] = names
    if n >= max then return i end
  end
  return 0
end

local function window_end(f) return tonumber(string.match(f, ':(%d+)$')) or 0 end

local function raise_all(counters, at)
  for i, key in ipairs(counters) do
    local field = ARGV[at + 2 * (i - 1)]
    local last = window_end(field)
    local names = limit_fields[key] or redis.call('HKEYS', key)
    limit_fields[key] = nil
    for _, f in ipairs(names) do
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
