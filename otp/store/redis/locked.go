package redis

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The operator's list of lock-outs: a pass over every identity key.

// scanCount is how many keys one SCAN step asks for.
const scanCount = 1000

// Locked implements otp.Store. It SCANs every identity key (on each master
// of a Cluster), so it costs a pass over the database: an operator's
// command, not something for the request path. Each identity comes with
// the sealed subject its lock-out was given (SealedSubject), for the
// service to open; one locked out by a version that kept the subject in
// clear comes with that Subject, and one locked out before versions kept
// either is counted and listed with neither.
func (s *Store) Locked(ctx context.Context, now time.Time, max int) ([]otp.LockedIdentity, int, error) {
	var (
		mu   sync.Mutex
		seen = make(map[string]bool)
		all  []otp.LockedIdentity
	)
	nowMS := ms(now)
	match := globEscape(s.prefix) + "{*}" + identitySuffix
	scan := func(ctx context.Context, node scanner) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, scanCount).Result()
			if err != nil {
				return err
			}
			keys = slices.DeleteFunc(keys, func(k string) bool { return !s.isIdentityKey(k) })
			// Through the store's own client, which routes each key to
			// the node that holds it even if a slot moved meanwhile.
			cmds, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, k := range keys {
					p.HMGet(ctx, k, "locked", "fail_exp", "failures", "sub", "ssub")
				}
				return nil
			})
			if err != nil {
				return err
			}
			mu.Lock()
			for i, cmd := range cmds {
				v := cmd.(*goredis.SliceCmd).Val()
				locked, failExp := toInt(v[0]), toInt(v[1])
				if seen[keys[i]] || nowMS >= locked || nowMS >= failExp {
					continue
				}
				seen[keys[i]] = true
				sub, _ := v[3].(string)
				sealed, _ := v[4].(string)
				all = append(all, otp.LockedIdentity{Subject: sub, SealedSubject: []byte(sealed), Failures: int(toInt(v[2])), Until: fromMS(locked)})
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	if cluster, ok := s.client.(*goredis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error { return scan(ctx, node) })
	} else {
		err = scan(ctx, s.client)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("redis locked: %w", err)
	}
	slices.SortFunc(all, func(a, b otp.LockedIdentity) int {
		if c := b.Until.Compare(a.Until); c != 0 {
			return c
		}
		if c := strings.Compare(a.Subject, b.Subject); c != 0 {
			return c
		}
		return bytes.Compare(a.SealedSubject, b.SealedSubject)
	})
	total := len(all)
	if max >= 0 && len(all) > max {
		all = all[:max]
	}
	return all, total, nil
}

type scanner interface {
	Scan(ctx context.Context, cursor uint64, match string, count int64) *goredis.ScanCmd
}

// isIdentityKey reports whether k is an identity key of this store: SCAN's
// pattern would also match other keys that happen to end the same way.
func (s *Store) isIdentityKey(k string) bool {
	rest, ok := strings.CutPrefix(k, s.prefix+"{")
	if !ok {
		return false
	}
	tag, ok := strings.CutSuffix(rest, "}"+identitySuffix)
	if !ok || len(tag) != tagLen {
		return false
	}
	_, err := hex.DecodeString(tag)
	return err == nil
}

// globEscape quotes the characters a SCAN pattern would read as wildcards.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
