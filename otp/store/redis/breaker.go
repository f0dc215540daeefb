package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The conversion breaker's keys share one hash tag, {brk}, so a send's
// scopes, its ref and the list of blocks are one slot and each operation is
// one script even on a Cluster (the breaker is touched once per send, so one
// slot is no hot spot next to the send itself):
//
//   brk:{brk}:s:<scope>  a hash per scope: s<bucket> and c<bucket> (sends and
//                        conversions per bucket), until, level, forget (the
//                        block, its repeats, when they are forgotten); its
//                        TTL runs to the later of the window and forget
//   brk:{brk}:r:<ref>    a string, "<sends> <bucket ms> <expiry>\n<scope>\n...",
//                        for the code's lifetime by the caller's clock:
//                        what a verification converts
//   brk:{brk}:blocks     a hash, scope -> "until level sends conversions",
//                        for the operator's list; its TTL runs to the last
//                        block's end
//
// Scopes name a prefix, range or country ("range:+4477009"), never a full
// number.

func (s *Store) breakerBase() string { return s.brkBase }

func (s *Store) scopeKeys(scopes []string) []string {
	keys := make([]string, len(scopes))
	for i, sc := range scopes {
		keys[i] = s.breakerBase() + "s:" + sc
	}
	return keys
}

// breakerFunctions decide and count the breaker's part of a send, for
// breakerBlockedScript, breakerCountScript and sendScript (which runs them
// with the rest of the send on one server or Sentinel). breaker_blocked
// returns the index (1-based) of the first scope key blocked at now, its
// until and its level (the blocks so far), or 0. breaker_count counts a
// send in every scope (p: bucket, buckets, min_sends, permille, block,
// max_block, ref_ttl, window, in milliseconds where times), blocks every
// scope the policy now trips, remembers the ref, and returns i, until,
// level, sends, conversions per new block. They mirror
// memory.Store.BreakerCount and otp.BreakerPolicy.Trips. breaker_window
// sums a scope's sends and conversions over the window's buckets, read
// with any other fields breaker_fields named in one HMGET, whose answer
// it returns too (also for breakerStatsScript): a script runs each
// redis.call as a command of its own, and one HMGET per scope instead of
// one per bucket and one per other field saves redis-server 12 of the
// 91 commands of a cycle.
const breakerFunctions = `
local function breaker_fields(bucket, buckets, extra)
  local f = {}
  for b = bucket - buckets + 1, bucket do
    f[#f + 1] = 's' .. b
    f[#f + 1] = 'c' .. b
  end
  for _, x in ipairs(extra) do f[#f + 1] = x end
  return f
end

local function breaker_window(k, fields, buckets)
  local v = redis.call('HMGET', k, unpack(fields))
  local sends, conv = 0, 0
  for j = 1, 2 * buckets, 2 do
    sends = sends + (tonumber(v[j]) or 0)
    conv = conv + (tonumber(v[j + 1]) or 0)
  end
  return sends, conv, v
end

local function breaker_blocked(scope_keys, now)
  for i, k in ipairs(scope_keys) do
    local v = redis.call('HMGET', k, 'until', 'level')
    local till = tonumber(v[1]) or 0
    if now < till then return i, till, tonumber(v[2]) or 1 end
  end
  return 0, 0, 0
end

local function breaker_count(ref_key, blocks_key, scope_keys, scope_names, now, p)
  local bucket, buckets, min_sends, permille = p[1], p[2], p[3], p[4]
  local block, max_block, ref_ttl, window = p[5], p[6], p[7], p[8]
  local out = {}
  -- one HMGET per scope reads the window, forget and level (the fields
  -- after the window's, at 2 * buckets + 1 and + 2)
  local fields = breaker_fields(bucket, buckets, {'forget', 'level'})
  for i, k in ipairs(scope_keys) do
    redis.call('HINCRBY', k, 's' .. bucket, 1)
    if redis.call('HLEN', k) > 4 * buckets + 3 then
      for _, f in ipairs(redis.call('HKEYS', k)) do
        local b = tonumber(string.sub(f, 2))
        if (string.sub(f, 1, 1) == 's' or string.sub(f, 1, 1) == 'c') and b and b <= bucket - buckets then
          redis.call('HDEL', k, f)
        end
      end
    end
    local sends, conv, v = breaker_window(k, fields, buckets)
    local forget = tonumber(v[2 * buckets + 1]) or 0
    if sends >= min_sends and conv * 1000 < permille * sends then
      local level = 0
      if now < forget then level = tonumber(v[2 * buckets + 2]) or 0 end
      local d = block
      local j = 0
      while j < level and d < max_block do d = d * 2; j = j + 1 end
      if d > max_block then d = max_block end
      local till = now + d
      forget = till + max_block
      redis.call('HSET', k, 'until', till, 'level', level + 1, 'forget', forget)
      redis.call('HSET', blocks_key, scope_names[i], till .. ' ' .. level .. ' ' .. sends .. ' ' .. conv)
      if redis.call('PTTL', blocks_key) < till - now then redis.call('PEXPIRE', blocks_key, till - now) end
      table.insert(out, i); table.insert(out, till); table.insert(out, level)
      table.insert(out, sends); table.insert(out, conv)
    end
    redis.call('PEXPIRE', k, math.max(window, forget - now))
  end
  local ref = redis.call('GET', ref_key)
  local sent = 0
  if ref then sent = tonumber(string.match(ref, '^(%d+)')) or 0 end
  local val = tostring(sent + 1) .. ' ' .. math.floor(window / buckets) .. ' ' .. (now + ref_ttl)
  for i = 1, #scope_names do val = val .. '\n' .. scope_names[i] end
  redis.call('SET', ref_key, val, 'PX', ref_ttl)
  return out
end

-- breaker_convert counts the sends the ref at ref_key names as verified
-- in their scopes (keys under base), once: the verification's step on one
-- server or Sentinel, where a script may reach the scope keys the ref
-- names (a Cluster converts with breakerConvertScript instead).
local function breaker_convert(ref_key, now, base)
  local val = redis.call('GET', ref_key)
  if not val then return end
  redis.call('DEL', ref_key)
  local sent, bucket_ms, expires = string.match(val, '^(%d+) (%d+) (%d+)')
  sent, bucket_ms, expires = tonumber(sent), tonumber(bucket_ms), tonumber(expires)
  if not sent or not bucket_ms or bucket_ms < 1 or now >= expires then return end
  local bucket = math.floor(now / bucket_ms)
  for scope in string.gmatch(val, '\n([^\n]+)') do
    local k = base .. 's:' .. scope
    if redis.call('EXISTS', k) == 1 then redis.call('HINCRBY', k, 'c' .. bucket, sent) end
  end
end
`

// breakerParams are a policy's numbers as breaker_count takes them.
func breakerParams(p otp.BreakerPolicy, now time.Time, refTTL time.Duration) []any {
	return []any{p.BucketOf(now), p.Buckets, p.MinSends, p.MinConversionPermille(),
		p.Block.Milliseconds(), p.MaxBlock.Milliseconds(), refTTL.Milliseconds(), p.Window.Milliseconds()}
}

// breakerBlockedScript: KEYS scope keys; ARGV now. Returns the index
// (1-based) of the first blocked scope, its until and level, or 0.
var breakerBlockedScript = goredis.NewScript(breakerFunctions + `
local i, till, level = breaker_blocked(KEYS, tonumber(ARGV[1]))
if i == 0 then return {0} end
return {i, till, level}
`)

// breakerCountScript: KEYS ref, blocks, then one key per scope; ARGV now,
// then breakerParams, then the scope names. Returns {0, i, until, level}
// when scope i was blocked (nothing counted), else {1, then i, until,
// level, sends, conversions per new block}.
var breakerCountScript = goredis.NewScript(breakerFunctions + `
local now = tonumber(ARGV[1])
local p, keys, names = {}, {}, {}
for j = 1, 8 do p[j] = tonumber(ARGV[1 + j]) end
for i = 3, #KEYS do keys[i - 2] = KEYS[i]; names[i - 2] = ARGV[7 + i] end
local i, till, level = breaker_blocked(keys, now)
if i > 0 then return {0, i, till, level} end
local out = breaker_count(KEYS[1], KEYS[2], keys, names, now, p)
table.insert(out, 1, 1)
return out
`)

// breakerConvertScript: KEYS ref, then the scope keys the ref named; ARGV
// the ref's value as read, bucket. The ref is converted only if it still
// holds that value (a concurrent resend changes it: the caller reads again).
var breakerConvertScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local sent = tonumber(string.match(ARGV[1], '^(%d+)')) or 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HINCRBY', KEYS[i], 'c' .. ARGV[2], sent) end
end
return 1
`)

// breakerUnblockScript: KEYS scope key, blocks; ARGV scope, now. Returns 1
// if a block was in force.
var breakerUnblockScript = goredis.NewScript(`
local till = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if tonumber(ARGV[2]) < till then return 1 end
return 0
`)

// BreakerBlocked implements otp.BreakerStore.
func (s *Store) BreakerBlocked(ctx context.Context, scopes []string, now time.Time) (otp.BreakerBlock, bool, error) {
	if len(scopes) == 0 {
		return otp.BreakerBlock{}, false, nil
	}
	v, err := breakerBlockedScript.Run(ctx, s.client, s.scopeKeys(scopes), ms(now)).Int64Slice()
	if err != nil {
		return otp.BreakerBlock{}, false, fmt.Errorf("redis breaker blocked: %w", err)
	}
	if v[0] == 0 {
		return otp.BreakerBlock{}, false, nil
	}
	return otp.BreakerBlock{Scope: scopes[v[0]-1], Until: fromMS(v[1]), Level: int(v[2]) - 1}, true, nil
}

// BreakerCount implements otp.BreakerStore.
func (s *Store) BreakerCount(ctx context.Context, req otp.BreakerCountRequest) (otp.BreakerCountResult, error) {
	if len(req.Scopes) == 0 || req.Ref == "" || req.RefTTL < time.Millisecond {
		return otp.BreakerCountResult{}, errors.New("redis breaker count: expected scopes, a ref and its lifetime")
	}
	keys := append([]string{s.breakerBase() + "r:" + req.Ref, s.breakerBase() + "blocks"}, s.scopeKeys(req.Scopes)...)
	args := append([]any{ms(req.Now)}, breakerParams(req.Policy, req.Now, req.RefTTL)...)
	for _, sc := range req.Scopes {
		args = append(args, sc)
	}
	v, err := breakerCountScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return otp.BreakerCountResult{}, fmt.Errorf("redis breaker count: %w", err)
	}
	if v[0] == 0 {
		blk := otp.BreakerBlock{Scope: req.Scopes[v[1]-1], Until: fromMS(v[2]), Level: int(v[3]) - 1}
		return otp.BreakerCountResult{Blocked: &blk}, nil
	}
	return otp.BreakerCountResult{NewBlocks: newBlocks(req.Scopes, v[1:])}, nil
}

// newBlocks reads breaker_count's answer: i, until, level, sends,
// conversions per block, i naming one of scopes.
func newBlocks(scopes []string, v []int64) []otp.BreakerBlock {
	var out []otp.BreakerBlock
	for i := 0; i+4 < len(v); i += 5 {
		if v[i] < 1 || int(v[i]) > len(scopes) {
			continue
		}
		out = append(out, otp.BreakerBlock{Scope: scopes[v[i]-1], Until: fromMS(v[i+1]),
			Level: int(v[i+2]), Sends: int(v[i+3]), Conversions: int(v[i+4])})
	}
	return out
}

// BreakerConvert implements otp.BreakerStore. The ref names its scopes, so
// it is read first and converted by a script that checks it is unchanged.
func (s *Store) BreakerConvert(ctx context.Context, ref string, now time.Time) error {
	key := s.breakerBase() + "r:" + ref
	for range 3 {
		val, err := s.client.Get(ctx, key).Result()
		if errors.Is(err, goredis.Nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("redis breaker convert: %w", err)
		}
		lines := strings.Split(val, "\n")
		keys := append([]string{key}, s.scopeKeys(lines[1:])...)
		var sent, bucketMS, expires int64
		if _, err := fmt.Sscan(lines[0], &sent, &bucketMS, &expires); err != nil || bucketMS < 1 {
			return fmt.Errorf("redis breaker convert: a send record that does not parse: %q", lines[0])
		}
		if ms(now) >= expires {
			return nil
		}
		bucket := now.UnixMilli() / bucketMS
		done, err := breakerConvertScript.Run(ctx, s.client, keys, val, bucket).Int()
		if err != nil {
			return fmt.Errorf("redis breaker convert: %w", err)
		}
		if done == 1 {
			return nil
		}
	}
	return errors.New("redis breaker convert: the send changed three times while it was converted")
}

// BreakerBlocks implements otp.BreakerStore.
func (s *Store) BreakerBlocks(ctx context.Context, now time.Time) ([]otp.BreakerBlock, error) {
	all, err := s.client.HGetAll(ctx, s.breakerBase()+"blocks").Result()
	if err != nil {
		return nil, fmt.Errorf("redis breaker blocks: %w", err)
	}
	var out []otp.BreakerBlock
	for scope, v := range all {
		var until, level, sends, conv int64
		if _, err := fmt.Sscan(v, &until, &level, &sends, &conv); err != nil || until <= ms(now) {
			continue
		}
		out = append(out, otp.BreakerBlock{Scope: scope, Until: fromMS(until), Level: int(level), Sends: int(sends), Conversions: int(conv)})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Until.Equal(out[j].Until) {
			return out[i].Until.After(out[j].Until)
		}
		return out[i].Scope < out[j].Scope
	})
	return out, nil
}

// BreakerUnblock implements otp.BreakerStore.
func (s *Store) BreakerUnblock(ctx context.Context, scope string, now time.Time) (bool, error) {
	n, err := breakerUnblockScript.Run(ctx, s.client, []string{s.scopeKeys([]string{scope})[0], s.breakerBase() + "blocks"},
		scope, strconv.FormatInt(ms(now), 10)).Int()
	if err != nil {
		return false, fmt.Errorf("redis breaker unblock: %w", err)
	}
	return n == 1, nil
}
