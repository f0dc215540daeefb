package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// SentinelMaster is the master name the Sentinel harness monitors.
const SentinelMaster = "stepup"

// Sentinel is a master, one replica and three sentinels (quorum 2) that
// fail over within seconds: down-after 1s, failover-timeout 5s.
type Sentinel struct {
	// Addrs are the sentinels' addresses, as a client is given them.
	Addrs   []string
	Servers []*Server // the master first, then the replica, as started
	procs   []*testproc.Process
}

// StartSentinel starts the set and waits until every sentinel knows the
// replica and the two other sentinels, so that a failover can be agreed.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	Require(t, "redis-server")
	master := Start(t)
	replica := StartReplica(t, master)
	s := &Sentinel{Servers: []*Server{master, replica}}
	for i := 0; i < 3; i++ {
		s.startOne(t, master.port)
	}
	t.Cleanup(func() {
		for _, p := range s.procs {
			p.Stop()
		}
	})
	err := s.poll(30*time.Second, func(ctx context.Context) error {
		for _, addr := range s.Addrs {
			m, err := s.masterInfo(ctx, addr)
			if err != nil {
				return err
			}
			if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("sentinel %s sees %s replicas and %s other sentinels", addr, m["num-slaves"], m["num-other-sentinels"])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sentinels never agreed on the set: %v", err)
	}
	return s
}

// StartReplica starts a replica of master and waits until it has synced.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc := goredis.NewClient(&goredis.Options{Addr: master.Addr})
	defer mc.Close()
	// The first sync would otherwise wait 5 s for other replicas to join.
	if err := mc.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	replica := Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	s := &Sentinel{}
	if err := s.poll(30*time.Second, func(ctx context.Context) error {
		return roleIs(ctx, replica.Addr, "role:slave", "master_link_status:up")
	}); err != nil {
		t.Fatalf("replica %s never synced: %v", replica.Addr, err)
	}
	return replica
}

func (s *Sentinel) startOne(t testing.TB, masterPort int) {
	t.Helper()
	port := FreePort(t)
	dir := t.TempDir()
	// A sentinel rewrites its config file as it learns: it must be its own.
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor %[3]s 127.0.0.1 %d 2
sentinel down-after-milliseconds %[3]s 1000
sentinel failover-timeout %[3]s 5000
sentinel parallel-syncs %[3]s 1
`, port, dir, SentinelMaster, masterPort)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := testproc.Start(exec.Command("redis-server", conf, "--sentinel"), "+monitor master", 20*time.Second)
	if err != nil {
		t.Fatalf("sentinel on port %d: %v", port, err)
	}
	s.procs = append(s.procs, proc)
	s.Addrs = append(s.Addrs, "127.0.0.1:"+strconv.Itoa(port))
}

// Master is the address the sentinels give for the master right now.
func (s *Sentinel) Master(ctx context.Context) (string, error) {
	c := goredis.NewSentinelClient(&goredis.Options{Addr: s.Addrs[0]})
	defer c.Close()
	hp, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", err
	}
	return strings.Join(hp, ":"), nil
}

// Failover makes the sentinels promote the replica (SENTINEL FAILOVER, as
// an operator would before maintenance) and returns at once: the switch
// happens while the caller's traffic runs. AwaitFailover waits for its end.
func (s *Sentinel) Failover(ctx context.Context) (oldMaster string, err error) {
	if oldMaster, err = s.Master(ctx); err != nil {
		return "", err
	}
	c := goredis.NewSentinelClient(&goredis.Options{Addr: s.Addrs[0]})
	defer c.Close()
	return oldMaster, c.Failover(ctx, SentinelMaster).Err()
}

// KillMaster kills the master's process (SIGKILL), as a crash would, and
// returns its address: the sentinels see it down after a second and
// promote the replica. Restart brings it back.
func (s *Sentinel) KillMaster(ctx context.Context) (oldMaster string, err error) {
	if oldMaster, err = s.Master(ctx); err != nil {
		return "", err
	}
	srv, err := s.server(oldMaster)
	if err != nil {
		return "", err
	}
	srv.Stop()
	return oldMaster, nil
}

// Restart starts the server at addr again, empty (nothing is persisted),
// on the same port; the sentinels make it a replica of the master they
// name, as they do with a master that comes back.
func (s *Sentinel) Restart(addr string) error {
	srv, err := s.server(addr)
	if err != nil {
		return err
	}
	return srv.Start()
}

func (s *Sentinel) server(addr string) (*Server, error) {
	for _, srv := range s.Servers {
		if srv.Addr == addr {
			return srv, nil
		}
	}
	return nil, fmt.Errorf("%s is not one of the set", addr)
}

// AwaitNewMaster waits until every sentinel names one master other than
// oldMaster, and that master says it is one.
func (s *Sentinel) AwaitNewMaster(timeout time.Duration, oldMaster string) (newMaster string, err error) {
	err = s.poll(timeout, func(ctx context.Context) error {
		newMaster = ""
		for _, addr := range s.Addrs {
			m, err := s.masterInfo(ctx, addr)
			if err != nil {
				return err
			}
			now := m["ip"] + ":" + m["port"]
			if now == oldMaster {
				return fmt.Errorf("sentinel %s still names %s", addr, oldMaster)
			}
			if newMaster != "" && now != newMaster {
				return fmt.Errorf("sentinels disagree: %s and %s", newMaster, now)
			}
			newMaster = now
		}
		return roleIs(ctx, newMaster, "role:master")
	})
	return newMaster, err
}

// AwaitFailover waits for AwaitNewMaster and then until the old master
// follows the new one with its link up: the set is whole again.
func (s *Sentinel) AwaitFailover(timeout time.Duration, oldMaster string) (newMaster string, err error) {
	deadline := time.Now().Add(timeout)
	if newMaster, err = s.AwaitNewMaster(timeout, oldMaster); err != nil {
		return "", err
	}
	err = s.poll(time.Until(deadline), func(ctx context.Context) error {
		return roleIs(ctx, oldMaster, "role:slave", "master_host:127.0.0.1", "master_port:"+newMaster[strings.LastIndex(newMaster, ":")+1:], "master_link_status:up")
	})
	return newMaster, err
}

func roleIs(ctx context.Context, addr string, want ...string) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	for _, w := range want {
		if !strings.Contains(info, w) {
			return fmt.Errorf("%s: no %s in\n%s", addr, w, info)
		}
	}
	return nil
}

func (s *Sentinel) masterInfo(ctx context.Context, addr string) (map[string]string, error) {
	c := goredis.NewSentinelClient(&goredis.Options{Addr: addr})
	defer c.Close()
	m, err := c.Master(ctx, SentinelMaster).Result()
	if err != nil {
		return nil, fmt.Errorf("sentinel %s: %w", addr, err)
	}
	return m, nil
}

// poll asks check until it returns nil or timeout passes: a failover and
// the sentinels' gossip have no event a test could wait on.
func (s *Sentinel) poll(timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
