package otp

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// Familiarity remembers, per identity, the devices and client addresses
// that verified a code, and when its last codes were sent: what the risk of
// a send is judged by (a device or address new to the identity, a second
// send within the hour). It keeps one sealed record per identity in a
// LookupCache, with a bounded number of entries and a lifetime, so a flood
// of devices can't grow it. Reads and writes are not one atomic step: two
// concurrent writes may lose one entry, which only makes a later send look
// riskier, the side to err on.
type Familiarity struct {
	Cache LookupCache
	Keys  *Keys
	// TTL is how long a record lasts after its last write; Max is how
	// many devices, and how many addresses, it keeps (the latest).
	TTL time.Duration
	Max int
}

// DefaultFamiliarTTL and DefaultFamiliarMax bound what Familiarity keeps.
const (
	DefaultFamiliarTTL = 90 * 24 * time.Hour
	DefaultFamiliarMax = 10
)

// Familiar is one identity's record: keyed hashes only.
type Familiar struct {
	Devices []string `json:"d,omitempty"`
	IPs     []string `json:"i,omitempty"`
	// Sends are the Unix seconds of recent sends, the latest last.
	Sends []int64 `json:"s,omitempty"`
}

// KnowsDevice reports whether the device id verified a code before.
func (f Familiar) KnowsDevice(k *Keys, device string) bool {
	return device != "" && slices.Contains(f.Devices, k.DeviceHash(device))
}

// KnowsIP reports whether the client address (by its limit bucket)
// verified a code before.
func (f Familiar) KnowsIP(k *Keys, ip string) bool {
	return ip != "" && slices.Contains(f.IPs, familiarIP(k, ip))
}

// SendsSince counts the sends at or after t.
func (f Familiar) SendsSince(t time.Time) int {
	n := 0
	for _, s := range f.Sends {
		if s >= t.Unix() {
			n++
		}
	}
	return n
}

func familiarIP(k *Keys, ip string) string {
	return k.LimitKey("familiar_ip", ipBucket(ip))[:12]
}

func (fy Familiarity) key(identity string) string {
	return fy.Keys.LookupKey("familiar", identity)
}

// Read returns identity's record (empty when there is none or it does
// not open).
func (fy Familiarity) Read(ctx context.Context, identity string, now time.Time) (Familiar, error) {
	var f Familiar
	key := fy.key(identity)
	sealed, ok, err := fy.Cache.CachedLookup(ctx, key, now)
	if err != nil || !ok {
		return f, err
	}
	plain, err := fy.Keys.OpenLookup(key, sealed)
	if err != nil {
		return f, nil
	}
	_ = json.Unmarshal(plain, &f)
	return f, nil
}

// Verified remembers the device and address that verified a code.
func (fy Familiarity) Verified(ctx context.Context, identity, device, ip string, now time.Time) error {
	return fy.update(ctx, identity, now, func(f *Familiar) {
		if device != "" {
			f.Devices = remember(f.Devices, fy.Keys.DeviceHash(device), fy.max())
		}
		if ip != "" {
			f.IPs = remember(f.IPs, familiarIP(fy.Keys, ip), fy.max())
		}
	})
}

// Sent remembers a send at now, keeping the sends of the last hour.
func (fy Familiarity) Sent(ctx context.Context, identity string, now time.Time) error {
	return fy.update(ctx, identity, now, func(f *Familiar) {
		cut := now.Add(-time.Hour).Unix()
		f.Sends = slices.DeleteFunc(f.Sends, func(s int64) bool { return s < cut })
		f.Sends = append(f.Sends, now.Unix())
		if len(f.Sends) > 32 {
			f.Sends = f.Sends[len(f.Sends)-32:]
		}
	})
}

func (fy Familiarity) update(ctx context.Context, identity string, now time.Time, change func(*Familiar)) error {
	f, err := fy.Read(ctx, identity, now)
	if err != nil {
		return err
	}
	change(&f)
	plain, err := json.Marshal(f)
	if err != nil {
		return err
	}
	key := fy.key(identity)
	sealed, err := fy.Keys.SealLookup(key, plain)
	if err != nil {
		return err
	}
	ttl := fy.TTL
	if ttl <= 0 {
		ttl = DefaultFamiliarTTL
	}
	return fy.Cache.CacheLookup(ctx, key, sealed, now, ttl)
}

func (fy Familiarity) max() int {
	if fy.Max <= 0 {
		return DefaultFamiliarMax
	}
	return fy.Max
}

// remember puts v last in list (moving it if there), keeping the last max.
func remember(list []string, v string, max int) []string {
	list = slices.DeleteFunc(list, func(s string) bool { return s == v })
	list = append(list, v)
	if len(list) > max {
		list = list[len(list)-max:]
	}
	return list
}
