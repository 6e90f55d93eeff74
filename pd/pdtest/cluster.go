// Package pdtest starts real PD clusters in-process for tests: embedded etcd
// members in t.TempDir() on free loopback ports. It is meant for the tests of
// PD and of its users (a store's tests can run against a real PD).
package pdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/store/storetest"
	"github.com/rdb-project/rdb/store/testport"
)

// Cluster is a PD cluster of in-process members.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	cfgs    []server.Config
	servers []*server.Server // nil while stopped
	certs   *storetest.Certs // with WithTLS
}

// Option adjusts every member's configuration.
type Option func(i int, cfg *server.Config)

// WithDriver runs a driver on the leader; it is told which member runs it.
func WithDriver(newDriver func(i int) server.Driver) Option {
	return func(i int, cfg *server.Config) { cfg.Driver = newDriver(i) }
}

// WithStoreDownAfter sets how long a silent store stays up.
func WithStoreDownAfter(d time.Duration) Option {
	return func(_ int, cfg *server.Config) { cfg.StoreDownAfter = d }
}

// WithFormSettle sets how long PD waits after a store registers before it
// picks a strong namespace's group voters (the default here is 0: see
// NewCluster).
func WithFormSettle(d time.Duration) Option {
	return func(_ int, cfg *server.Config) { cfg.FormSettle = d }
}

// WithTLS runs every member with TLS on both ports, with certificates
// from certs (which must hold pd1..pdN's); the cluster's clients are then
// admins.
func WithTLS(certs *storetest.Certs) Option {
	return func(i int, cfg *server.Config) {
		cfg.TLS = certs.PD(cfg.Name)
		cfg.PeerTLS = certs.PD(cfg.Name)
		for _, list := range []*[]string{&cfg.ClientURLs, &cfg.PeerURLs} {
			for j, u := range *list {
				(*list)[j] = strings.Replace(u, "http://", "https://", 1)
			}
		}
	}
}

// NewCluster starts n members and waits until one of them leads. The
// cluster is stopped when the test ends. Set RDB_TEST_LOG=debug (or info) to
// see the members' logs.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	c := &Cluster{t: t, cfgs: make([]server.Config, n), servers: make([]*server.Server, n)}
	var initial []string
	for i := range n {
		cfg := server.DefaultConfig()
		cfg.Name = fmt.Sprintf("pd%d", i+1)
		cfg.DataDir = filepath.Join(t.TempDir(), cfg.Name)
		cfg.ClientURLs = []string{fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])}
		cfg.PeerURLs = []string{fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])}
		cfg.LeaderLease = 2 * time.Second
		cfg.StoreDownAfter = 2 * time.Second
		cfg.WatchProgressInterval = 500 * time.Millisecond
		cfg.TickMs, cfg.ElectionMs = 50, 500
		// Tests register their stores before they create namespaces and
		// expect the groups formed at once; tests of the wait for arriving
		// stores set it with WithFormSettle.
		cfg.FormSettle = 0
		cfg.Logger = testLogger()
		for _, o := range opts {
			o(i, &cfg)
		}
		if cfg.TLS.Enabled() {
			c.certs = certsOf(cfg)
		}
		c.cfgs[i] = cfg
		initial = append(initial, cfg.Name+"="+cfg.PeerURLs[0])
	}
	for i := range c.cfgs {
		c.cfgs[i].InitialCluster = strings.Join(initial, ",")
	}
	t.Cleanup(c.Close)

	// A new cluster's members wait for each other: start them together.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start PD cluster: %v", err)
	}
	c.WaitLeader()
	return c
}

func testLogger() *zap.Logger {
	level := os.Getenv("RDB_TEST_LOG")
	if level == "" {
		return zap.NewNop()
	}
	zc := zap.NewDevelopmentConfig()
	if err := zc.Level.UnmarshalText([]byte(level)); err != nil {
		return zap.NewNop()
	}
	lg, err := zc.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg
}

func (c *Cluster) start(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, c.cfgs[i])
	if err != nil {
		return fmt.Errorf("member %d: %w", i, err)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return nil
}

// Close stops every member, all at once (etcd takes about a second to stop
// a member).
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i := range c.cfgs {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
}

// Size is the number of members, running or not.
func (c *Cluster) Size() int { return len(c.cfgs) }

// Server returns member i, or nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Config returns member i's configuration.
func (c *Cluster) Config(i int) server.Config { return c.cfgs[i] }

// Endpoint returns member i's client address (host:port).
func (c *Cluster) Endpoint(i int) string {
	u := c.cfgs[i].ClientURLs[0]
	return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
}

// Endpoints returns every member's client address, comma-separated.
func (c *Cluster) Endpoints() string {
	eps := make([]string, len(c.cfgs))
	for i := range c.cfgs {
		eps[i] = c.Endpoint(i)
	}
	return strings.Join(eps, ",")
}

// Stop stops member i (it steps down first if it leads).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// Kill stops member i as a crash would: it does not step down, so the
// others take over only when its lease expires.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Kill()
	}
}

// Restart starts a stopped member i again, on its data dir.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.start(i); err != nil {
		c.t.Fatalf("restart PD member %d: %v", i, err)
	}
}

// LeaderIndex returns the running member that leads now, or -1.
func (c *Cluster) LeaderIndex() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.servers {
		if s != nil && s.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits until a member leads and every running member knows it;
// it returns the leader's index.
func (c *Cluster) WaitLeader() int {
	c.t.Helper()
	leader := -1
	Eventually(c.t, 15*time.Second, func() error {
		leader = c.LeaderIndex()
		if leader < 0 {
			return errors.New("no PD leader")
		}
		id := c.Server(leader).Member().GetId()
		for i := range c.cfgs {
			if s := c.Server(i); s != nil && s.Leader().GetId() != id {
				return fmt.Errorf("member %d does not know leader %d yet", i, leader)
			}
		}
		return nil
	})
	return leader
}

// Client returns a PD client of every member, closed when the test ends.
func (c *Cluster) Client(opts ...pdclient.Option) *pdclient.Client {
	return c.ClientOf(c.Endpoints(), opts...)
}

// ClientOf returns a PD client of the given endpoints, closed when the test
// ends.
func (c *Cluster) ClientOf(endpoints string, opts ...pdclient.Option) *pdclient.Client {
	c.t.Helper()
	if c.certs != nil {
		creds, err := c.certs.Client("admin").ClientCredentials()
		if err != nil {
			c.t.Fatal(err)
		}
		opts = append([]pdclient.Option{pdclient.WithCredentials(creds)}, opts...)
	}
	cli, err := pdclient.New(endpoints, opts...)
	if err != nil {
		c.t.Fatalf("PD client: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// EtcdClient returns a raw etcd client of the cluster (for what PD does not
// offer, such as compaction), closed when the test ends.
func (c *Cluster) EtcdClient() *clientv3.Client {
	c.t.Helper()
	eps := strings.Split(c.Endpoints(), ",")
	cfg := clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if c.certs != nil {
		tc, err := c.certs.Client("admin").ClientConfig()
		if err != nil {
			c.t.Fatal(err)
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		c.t.Fatalf("etcd client: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// Eventually polls cond until it returns nil, failing the test with cond's
// last error if that takes longer than timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	storetest.Eventually(t, timeout, cond, "condition")
}

// freePorts returns n distinct loopback ports that were free a moment ago,
// below the ephemeral range: a member restarted on its ports must not find
// them taken by an outgoing connection (testport).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for len(ports) < n {
		addr, err := testport.Free()
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if !slices.Contains(ports, port) {
			ports = append(ports, port)
		}
	}
	return ports
}

// certsOf finds the test PKI a member's TLS files come from.
func certsOf(cfg server.Config) *storetest.Certs {
	return &storetest.Certs{Dir: filepath.Dir(cfg.TLS.TrustedCAFile)}
}

// Certs is the cluster's PKI (WithTLS), or nil.
func (c *Cluster) Certs() *storetest.Certs { return c.certs }
