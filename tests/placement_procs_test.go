package tests

// Placement with real processes: a PD and six rdb-server stores in PD
// mode, 60 strong and 30 eventual namespaces with data.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/store/storetest"
	"github.com/rdb-project/rdb/tests/chaos"
)

// placedProcs is a PD process and its store processes.
type placedProcs struct {
	t        *testing.T
	dir, bin string
	pd       string // PD's client address
	cli      *pdclient.Client

	mu     sync.Mutex
	stores []*proc
	addrs  []string
	conns  []*grpc.ClientConn
	down   []bool
}

func startPlacedProcs(t *testing.T, n int) *placedProcs {
	bin := binaries(t)
	c := &placedProcs{t: t, dir: t.TempDir(), bin: bin}
	c.pd = freePort(t)
	startProc(t, c.dir, bin+"/pd-server", "--name", "pd1", "--data-dir", filepath.Join(c.dir, "pd1"),
		"--client-urls", "http://"+c.pd, "--peer-urls", "http://"+freePort(t),
		"--replication-factor", "3", "--store-disconnect-after", "3s", "--max-store-down-time", "10s",
		"--form-settle", "2s", "--log-level", "warn")
	cli, err := pdclient.New(c.pd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	c.cli = cli
	for range n {
		c.addStore()
	}
	return c
}

// addStore starts the next store.
func (c *placedProcs) addStore() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := len(c.stores) + 1
	addr := freePort(c.t)
	p := startProc(c.t, c.dir, c.bin+"/rdb-server", "--store-id", fmt.Sprint(id), "--addr", addr,
		"--data-dir", filepath.Join(c.dir, fmt.Sprintf("s%d", id)), "--pd", c.pd, "--log-level", "warn")
	c.stores = append(c.stores, p)
	c.addrs = append(c.addrs, addr)
	c.conns = append(c.conns, dial(c.t, addr))
	c.down = append(c.down, false)
	return id - 1
}

func (c *placedProcs) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.stores)
}

func (c *placedProcs) Addr(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[i]
}

func (c *placedProcs) Conn(i int) grpc.ClientConnInterface {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns[i]
}

func (c *placedProcs) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.down[i]
}

func (c *placedProcs) kill(i int) {
	c.mu.Lock()
	c.down[i] = true
	p := c.stores[i]
	c.mu.Unlock()
	p.kill(syscall.SIGKILL)
}

func (c *placedProcs) cas(i int) kvrpc.KvCasClient { return kvrpc.NewKvCasClient(c.Conn(i)) }
func (c *placedProcs) raw(i int) kvrpc.KvRawClient { return kvrpc.NewKvRawClient(c.Conn(i)) }

// live lists the running stores' indexes.
func (c *placedProcs) live() []int {
	var out []int
	for i := range c.N() {
		if c.Running(i) {
			out = append(out, i)
		}
	}
	return out
}

// waitPlaced waits until every namespace has three replicas, none on a
// store of exclude (ids), is neither moving nor under-replicated, and a
// strong one has a leader.
func (c *placedProcs) waitPlaced(within time.Duration, exclude ...uint64) []*pdpb.NamespaceStatus {
	c.t.Helper()
	var list []*pdpb.NamespaceStatus
	storetest.Eventually(c.t, within, func() error {
		resp, err := c.cli.ListNamespaces(ctxT(c.t, 5*time.Second))
		if err != nil {
			return err
		}
		pending := 0
		var example string
		for _, st := range resp.GetNamespaces() {
			r := st.GetRecord().GetReplicas()
			bad := len(r) != 3 || st.GetMoving() || st.GetUnderReplicated() ||
				(st.GetRecord().GetMode() == "strong" && st.GetLeader() == 0) ||
				slices.ContainsFunc(exclude, func(id uint64) bool { return slices.Contains(r, id) })
			if bad {
				pending++
				example = fmt.Sprintf("%s: replicas %v moving %v under-replicated %v leader %d", st.GetRecord().GetName(),
					r, st.GetMoving(), st.GetUnderReplicated(), st.GetLeader())
			}
		}
		if pending > 0 {
			return fmt.Errorf("%d namespaces not placed yet, as %s", pending, example)
		}
		list = resp.GetNamespaces()
		return nil
	}, "every namespace on three live stores")
	return list
}

// waitBalanced waits until the up stores' replica counts are within one
// of their mean and no store leads more than twice its share.
func (c *placedProcs) waitBalanced(within time.Duration) []*pdpb.StoreStatus {
	c.t.Helper()
	var up []*pdpb.StoreStatus
	storetest.Eventually(c.t, within, func() error {
		list, err := c.cli.ListStores(ctxT(c.t, 5*time.Second))
		if err != nil {
			return err
		}
		up = nil
		replicas, leaders := 0, 0
		for _, st := range list {
			if st.GetState() == "up" {
				up = append(up, st)
				replicas += int(st.GetReplicaCount())
				leaders += int(st.GetLeaderCount())
			}
		}
		mean := float64(replicas) / float64(len(up))
		share := float64(leaders) / float64(len(up))
		for _, st := range up {
			if d := float64(st.GetReplicaCount()) - mean; d > 1 || d < -1 {
				return fmt.Errorf("store %d holds %d replicas, mean %.1f", st.GetId(), st.GetReplicaCount(), mean)
			}
			if float64(st.GetLeaderCount()) > 2*share {
				return fmt.Errorf("store %d leads %d groups, share %.1f", st.GetId(), st.GetLeaderCount(), share)
			}
		}
		return nil
	}, "replica and leader counts balanced")
	return up
}

// TestPlacementProcesses: PD places 91 namespaces (the default one
// included) on three of six stores each, balanced; a store killed with
// SIGKILL is replaced and every acknowledged write stays readable; a live
// store removed under load (porcupine checks the strong namespaces) ends
// removed, holding nothing; a seventh store brings the counts back within
// one.
func TestPlacementProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process placement test")
	}
	c := startPlacedProcs(t, 6)
	storetest.Eventually(t, 30*time.Second, func() error {
		list, err := c.cli.ListStores(ctxT(t, 5*time.Second))
		if err != nil {
			return err
		}
		if len(list) != 6 {
			return fmt.Errorf("%d stores registered", len(list))
		}
		return nil
	}, "six stores registered")

	var strong, eventual []string
	for i := range 60 {
		strong = append(strong, fmt.Sprintf("s%02d", i))
	}
	for i := range 30 {
		eventual = append(eventual, fmt.Sprintf("e%02d", i))
	}
	for _, ns := range strong {
		if _, err := c.cli.SetNamespaceMode(ctxT(t, 10*time.Second), &pdpb.SetNamespaceModeRequest{Name: ns, Mode: "strong"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range eventual {
		if _, err := c.cli.SetNamespaceMode(ctxT(t, 10*time.Second), &pdpb.SetNamespaceModeRequest{Name: ns, Mode: "eventual"}); err != nil {
			t.Fatal(err)
		}
	}
	// Data, written through every store in turn.
	const keys = 3
	for n, ns := range strong {
		for k := range keys {
			i := (n + k) % 6
			storetest.Eventually(t, 30*time.Second, func() error {
				r, err := c.cas(i).CompareAndSwap(ctxT(t, 5*time.Second), &kvrpc.CasRequest{Namespace: ns, Key: fmt.Sprintf("k%d", k), Value: ns})
				if err == nil && !r.GetSuccess() && r.GetValue() == ns {
					return nil // an earlier attempt took
				}
				if err == nil && !r.GetSuccess() {
					return fmt.Errorf("CAS refused: %v", r)
				}
				return err
			}, "CAS %s/k%d through store %d", ns, k, i+1)
		}
	}
	for n, ns := range eventual {
		for k := range keys {
			i := (n + k) % 6
			storetest.Eventually(t, 30*time.Second, func() error {
				_, err := c.raw(i).RawPut(ctxT(t, 5*time.Second), &kvrpc.RawPutRequest{Namespace: ns, Key: fmt.Sprintf("k%d", k), Value: ns})
				return err
			}, "RawPut %s/k%d through store %d", ns, k, i+1)
		}
	}

	list := c.waitPlaced(time.Minute)
	if len(list) != 91 {
		t.Fatalf("%d namespaces, want 91", len(list))
	}
	up := c.waitBalanced(time.Minute)
	for _, st := range up {
		t.Logf("store %d: %d replicas, leads %d", st.GetId(), st.GetReplicaCount(), st.GetLeaderCount())
	}
	// Every replica of an eventual namespace has every write before a
	// store is lost (a write only the lost store had would go with it).
	checkData := func(list []*pdpb.NamespaceStatus) {
		t.Helper()
		live := c.live()
		for _, st := range list {
			ns := st.GetRecord().GetName()
			if ns == "default" {
				continue
			}
			for k := range keys {
				key := fmt.Sprintf("k%d", k)
				if st.GetRecord().GetMode() == "strong" {
					i := live[rand.IntN(len(live))]
					g, err := c.cas(i).Get(ctxT(t, 10*time.Second), &kvrpc.GetRequest{Namespace: ns, Key: key})
					if err != nil || g.GetValue() != ns {
						t.Fatalf("Get %s/%s through store %d = %v, %v", ns, key, i+1, g, err)
					}
					continue
				}
				for _, id := range st.GetRecord().GetReplicas() {
					storetest.Eventually(t, 20*time.Second, func() error {
						g, err := c.raw(int(id-1)).RawGet(ctxT(t, 5*time.Second), &kvrpc.RawGetRequest{Namespace: ns, Key: key})
						if err != nil {
							return err
						}
						if !g.GetFound() || g.GetValue() != ns {
							return fmt.Errorf("%v", g)
						}
						return nil
					}, "replica %d has %s/%s", id, ns, key)
				}
			}
		}
	}
	checkData(list)

	// SIGKILL store 6: once down (10s), its replicas are re-created.
	killedAt := time.Now()
	c.kill(5)
	list = c.waitPlaced(2*time.Minute, 6)
	t.Logf("store 6 killed: every namespace back to three live replicas after %v", time.Since(killedAt).Round(time.Second))
	checkData(list)

	// Remove store 5 under load: porcupine checks the strong namespaces,
	// and no acknowledged eventual write is lost.
	var loadNS []chaos.Namespace
	for i, ns := range []string{"s00", "s01", "s02", "s03", "e00", "e01"} {
		mode := chaos.Strong
		if i >= 4 {
			mode = chaos.Eventual
		}
		loadNS = append(loadNS, chaos.Namespace{Name: ns, Mode: mode, Keys: []string{"la", "lb", "lc"}})
	}
	var removeOnce sync.Once
	remove := chaos.Fault{Name: "remove store 5", Weight: 1, Inject: func(ctx context.Context, _ *rand.Rand) (func(context.Context) error, error) {
		var err error
		removeOnce.Do(func() { _, err = c.cli.RemoveStore(ctx, 5) })
		return nil, err
	}}
	removed := func(ctx context.Context) error {
		return storetest.Poll(ctx, func() error {
			list, err := c.cli.ListStores(ctx)
			if err != nil {
				return err
			}
			for _, st := range list {
				if st.GetId() == 5 && st.GetState() != "removed" {
					return fmt.Errorf("store 5 is %s", st.GetState())
				}
			}
			return nil
		})
	}
	removeStarted := time.Now()
	res := chaos.Run(context.Background(), chaos.RunConfig{
		Name: "placement-remove", Seed: 1, Cluster: c,
		Faults: []chaos.Fault{remove},
		Heal: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			return removed(ctx)
		},
		Namespaces: loadNS, Duration: 15 * time.Second, Clients: 6,
		OpTimeout: 3 * time.Second, Think: 10 * time.Millisecond, MaxOpDelay: 5 * time.Second,
		FaultGap: [2]time.Duration{time.Second, 2 * time.Second}, FaultHold: [2]time.Duration{time.Second, time.Second},
		VisualizeDir: *outFlag, Logf: t.Logf,
	})
	t.Logf("store 5 removed under load in %v: %d operations, %d checked", time.Since(removeStarted).Round(time.Second), res.Ops, res.Checked)
	for ns, o := range res.Outcomes {
		t.Logf("%s: %d answered, %d failed, %d unknown", ns, o[chaos.OK], o[chaos.Failed], o[chaos.Unknown])
	}
	for _, v := range res.Violations {
		t.Errorf("VIOLATION: %s", v)
	}
	list = c.waitPlaced(2*time.Minute, 5, 6)
	stores, err := c.cli.ListStores(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stores {
		if st.GetId() == 5 && (st.GetState() != "removed" || st.GetReplicaCount() != 0 || len(st.GetGroups()) != 0) {
			t.Fatalf("store 5 after removal: %v", st)
		}
	}
	checkData(list)

	// A seventh store: the counts come back within one.
	c.addStore()
	storetest.Eventually(t, 30*time.Second, func() error {
		list, err := c.cli.ListStores(ctxT(t, 5*time.Second))
		if err != nil {
			return err
		}
		for _, st := range list {
			if st.GetId() == 7 && st.GetState() == "up" {
				return nil
			}
		}
		return fmt.Errorf("store 7 is not up")
	}, "store 7 up")
	addedAt := time.Now()
	up = c.waitBalanced(3 * time.Minute)
	t.Logf("store 7 added: counts within one after %v", time.Since(addedAt).Round(time.Second))
	c.waitPlaced(2 * time.Minute)
	for _, st := range up {
		t.Logf("with store 7: store %d: %d replicas, leads %d", st.GetId(), st.GetReplicaCount(), st.GetLeaderCount())
	}
}
