package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

func init() {
	caddy.RegisterModule(MemoryStore{})
}

// memoryStores keeps memory stores alive across config reloads: a reload
// provisions the new config before cleaning up the old one, so the count
// never drops to zero and challenges in flight survive.
var memoryStores = caddy.NewUsagePool()

// MemoryStore keeps challenges and counters in Caddy's memory: the default,
// for a single instance. State survives `caddy reload` but not a restart;
// several instances need the redis store.
//
// Caddyfile: `store memory [<name>]`. Handlers with the same name (default
// "default") share one store.
type MemoryStore struct {
	// Stores with the same name are one store.
	Name string `json:"name,omitempty"`

	otp.Store `json:"-"`
	key       string
}

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.stores.memory",
		New: func() caddy.Module { return new(MemoryStore) },
	}
}

type pooledMemory struct{ *memory.Store }

func (p pooledMemory) Destruct() error { return p.Close() }

// Provision takes the shared store, creating it on first use.
func (m *MemoryStore) Provision(ctx caddy.Context) error {
	name := m.Name
	if name == "" {
		name = "default"
	}
	m.key = "memory/" + name
	v, _, err := memoryStores.LoadOrNew(m.key, func() (caddy.Destructor, error) {
		return pooledMemory{memory.New(otp.SystemClock{}, time.Minute)}, nil
	})
	if err != nil {
		return err
	}
	m.Store = v.(pooledMemory).Store
	return nil
}

// Cleanup releases this config's use of the store.
func (m *MemoryStore) Cleanup() error {
	if m.key == "" {
		return nil
	}
	_, err := memoryStores.Delete(m.key)
	return err
}

// UnmarshalCaddyfile parses `memory [<name>]`.
func (m *MemoryStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		m.Name = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("store memory takes no block, got %q", d.Val())
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*MemoryStore)(nil)
	_ caddy.CleanerUpper    = (*MemoryStore)(nil)
	_ caddyfile.Unmarshaler = (*MemoryStore)(nil)
	_ otp.Store             = (*MemoryStore)(nil)
)
