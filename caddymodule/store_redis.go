package caddymodule

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

func init() {
	caddy.RegisterModule(RedisStore{})
}

// redisClients shares one connection pool per set of connection settings
// across config reloads; the last config to let go of it closes it.
var redisClients = caddy.NewUsagePool()

// RedisStore keeps challenges, attempt counters and lock-outs in Redis, so
// any number of Caddy instances share them and a restart loses nothing.
// One address gives a plain client, several a Redis Cluster client, and
// master_name a Sentinel client (go-redis's UniversalClient).
//
// Every read-modify-write is a Lua script, atomic on the server. A send (the
// lock-out, the cooldown, the challenge and every send limit, decided
// together) is one script on one server or Sentinel; on a Cluster, whose
// send-limit counters live in other slots than the identity, it is a few
// ordered steps that only ever refuse more. When Redis is down or slow the
// plugin fails closed within command_timeout: no SMS, no pass-through, a 503
// page; it recovers by itself when Redis does.
//
// Caddyfile:
//
//	store redis [<url>] {
//		url             redis://[:password@]host:port/db
//		addresses       <host:port>...
//		master_name     <sentinel master>
//		username        <user>
//		password        <password>
//		db              <number>
//		tls
//		key_prefix      <prefix>
//		dial_timeout    <duration>
//		command_timeout <duration>
//		wait_replicas   <n>
//	}
type RedisStore struct {
	// A redis:// or rediss:// URL. Placeholders ({env.*}, {file.*}) are
	// expanded.
	URL string `json:"url,omitempty"`
	// Addresses of the servers (several: a Cluster, or Sentinels with
	// master_name). Overrides the URL's address.
	Addresses []string `json:"addresses,omitempty"`
	// The Sentinel master name.
	MasterName string `json:"master_name,omitempty"`
	Username   string `json:"username,omitempty"`
	// Password; placeholders are expanded.
	Password string `json:"password,omitempty"`
	DB       int    `json:"db,omitempty"`
	// Connect with TLS.
	TLS bool `json:"tls,omitempty"`
	// Prefix of every key. Default: "stepup:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Time-out of a connection attempt. Default: 1s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// Time-out of one command, after which the request fails closed.
	// Default: 1s.
	CommandTimeout caddy.Duration `json:"command_timeout,omitempty"`
	// Replicas that must hold a verification before it counts: Redis
	// replicates after it answers, and a failover loses what no replica
	// got, which would bring a used code back to life. Default: 1 with
	// master_name, 0 otherwise.
	WaitReplicas *int `json:"wait_replicas,omitempty"`

	otp.Store `json:"-"`
	poolKey   string
}

// CaddyModule returns the Caddy module information.
func (RedisStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.stores.redis",
		New: func() caddy.Module { return new(RedisStore) },
	}
}

type pooledRedis struct{ client goredis.UniversalClient }

func (p pooledRedis) Destruct() error { return p.client.Close() }

// Provision connects lazily: Caddy starts even while Redis is down, and
// requests fail closed until it is back.
func (s *RedisStore) Provision(ctx caddy.Context) error {
	opts, err := s.options()
	if err != nil {
		return err
	}
	// Configs with the same connection settings share a pool; the password
	// is part of the key only as a hash.
	sum := sha256.Sum256([]byte(fmt.Sprintf("%q %q %q %q %d %t %s %s %s",
		opts.Addrs, opts.MasterName, opts.Username, opts.Password, opts.DB, opts.TLSConfig != nil,
		opts.DialTimeout, opts.ReadTimeout, opts.PoolTimeout)))
	s.poolKey = "redis/" + hex.EncodeToString(sum[:])
	v, loaded, err := redisClients.LoadOrNew(s.poolKey, func() (caddy.Destructor, error) {
		return pooledRedis{goredis.NewUniversalClient(opts)}, nil
	})
	if err != nil {
		return err
	}
	if !loaded {
		ctx.Logger().Info("redis store connecting", zap.Strings("addresses", opts.Addrs),
			zap.String("master_name", opts.MasterName), zap.Int("db", opts.DB), zap.Bool("tls", opts.TLSConfig != nil))
	}
	store := redis.New(v.(pooledRedis).client, s.KeyPrefix)
	if n := s.waitReplicas(); n > 0 {
		// Half the command time-out: WAIT answers with how many replicas
		// it got before the client gives up on the connection.
		store.WaitForReplicas(n, opts.ReadTimeout/2)
	}
	s.Store = store
	return nil
}

// waitReplicas is wait_replicas, or its default: one replica under
// Sentinel, whose failovers are the danger; none for a single server (no
// failover) or a Cluster.
func (s *RedisStore) waitReplicas() int {
	if s.WaitReplicas != nil {
		return *s.WaitReplicas
	}
	if s.MasterName != "" {
		return 1
	}
	return 0
}

// options turns the configuration into go-redis options, placeholders
// expanded.
func (s *RedisStore) options() (*goredis.UniversalOptions, error) {
	repl := caddy.NewReplacer()
	// An unset placeholder is an error, not an empty password or address.
	expand := func(field, v string) (string, error) {
		out, err := repl.ReplaceOrErr(v, true, true)
		if err != nil {
			return "", fmt.Errorf("redis store %s: %w", field, err)
		}
		return out, nil
	}
	username, err := expand("username", s.Username)
	if err != nil {
		return nil, err
	}
	password, err := expand("password", s.Password)
	if err != nil {
		return nil, err
	}
	rawURL, err := expand("url", s.URL)
	if err != nil {
		return nil, err
	}
	opts := &goredis.UniversalOptions{
		MasterName: s.MasterName,
		Username:   username,
		Password:   password,
		DB:         s.DB,
		// A retried script could count an attempt twice; fail instead.
		MaxRetries:            -1,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		PoolTimeout:           time.Second,
		ContextTimeoutEnabled: true,
	}
	if rawURL != "" {
		if err := s.applyURL(opts, rawURL); err != nil {
			return nil, err
		}
	}
	if len(s.Addresses) > 0 {
		opts.Addrs = nil
		for _, a := range s.Addresses {
			addr, err := expand("addresses", a)
			if err != nil {
				return nil, err
			}
			opts.Addrs = append(opts.Addrs, addr)
		}
	}
	if len(opts.Addrs) == 0 {
		return nil, fmt.Errorf("redis store: no server: set url or addresses")
	}
	if s.TLS && opts.TLSConfig == nil {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.DialTimeout > 0 {
		opts.DialTimeout = time.Duration(s.DialTimeout)
	}
	if s.CommandTimeout > 0 {
		opts.ReadTimeout = time.Duration(s.CommandTimeout)
		opts.WriteTimeout = time.Duration(s.CommandTimeout)
		opts.PoolTimeout = time.Duration(s.CommandTimeout)
	}
	// A Cluster pipeline sends a keyless WAIT to any node, where it would
	// count that node's replicas and prove nothing.
	if n := s.waitReplicas(); n > 0 && opts.MasterName == "" && len(opts.Addrs) > 1 {
		return nil, fmt.Errorf("redis store wait_replicas %d: expected 0 on a Cluster (several addresses without master_name)", n)
	}
	return opts, nil
}

// applyURL takes the server, and what the options leave unset, from a
// redis:// or rediss:// URL.
func (s *RedisStore) applyURL(opts *goredis.UniversalOptions, rawURL string) error {
	parsed, err := goredis.ParseURL(rawURL)
	if err != nil {
		return fmt.Errorf("redis url: %w", err)
	}
	opts.Addrs = []string{parsed.Addr}
	if opts.Username == "" {
		opts.Username = parsed.Username
	}
	if opts.Password == "" {
		opts.Password = parsed.Password
	}
	if s.DB == 0 {
		opts.DB = parsed.DB
	}
	opts.TLSConfig = parsed.TLSConfig
	return nil
}

// Cleanup releases this config's use of the connection pool.
func (s *RedisStore) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	_, err := redisClients.Delete(s.poolKey)
	return err
}

// UnmarshalCaddyfile parses `redis [<url>] [{ ... }]`.
func (s *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		s.URL = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		var err error
		switch opt {
		case "url":
			s.URL, err = oneArg(d)
		case "addresses":
			s.Addresses = d.RemainingArgs()
			if len(s.Addresses) == 0 {
				return d.Errf("addresses: expected one or more host:port")
			}
		case "master_name":
			s.MasterName, err = oneArg(d)
		case "username":
			s.Username, err = oneArg(d)
		case "password":
			s.Password, err = oneArg(d)
		case "db":
			var v string
			if v, err = oneArg(d); err == nil {
				if s.DB, err = strconv.Atoi(v); err != nil || s.DB < 0 {
					return d.Errf("db %q: expected a database number such as 0", v)
				}
			}
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.TLS = true
		case "key_prefix":
			s.KeyPrefix, err = oneArg(d)
		case "dial_timeout":
			s.DialTimeout, err = boundedDurationArg(d, time.Minute)
		case "command_timeout":
			s.CommandTimeout, err = boundedDurationArg(d, time.Minute)
		case "wait_replicas":
			var v string
			if v, err = oneArg(d); err == nil {
				n, convErr := strconv.Atoi(v)
				if convErr != nil || n < 0 || n > maxWaitReplicas {
					return d.Errf("wait_replicas %q: expected a number of replicas from 0 to %d", v, maxWaitReplicas)
				}
				s.WaitReplicas = &n
			}
		default:
			return d.Errf("unknown redis store option %q: expected url, addresses, master_name, username, password, db, tls, key_prefix, dial_timeout, command_timeout or wait_replicas", opt)
		}
		if err != nil {
			return err
		}
	}
	if s.URL == "" && len(s.Addresses) == 0 {
		return d.Errf("store redis: expected a url (store redis redis://host:6379/0) or addresses")
	}
	return nil
}

// maxWaitReplicas bounds wait_replicas: more is a typo, not a deployment.
const maxWaitReplicas = 16

var (
	_ caddy.Provisioner     = (*RedisStore)(nil)
	_ caddy.CleanerUpper    = (*RedisStore)(nil)
	_ caddyfile.Unmarshaler = (*RedisStore)(nil)
	_ otp.Store             = (*RedisStore)(nil)
)
