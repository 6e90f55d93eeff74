package client_test

// The client against real in-process store clusters (storetest): every
// API, failover when a store dies, retries of what had no effect, an
// unknown outcome surfaced as such, leader routing, TLS.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/storetest"
)

// recorder notes every call a client sends: to which store, and how the
// store answered.
type recorder struct {
	mu    sync.Mutex
	calls []recorded
	sends map[string]int // calls sent, answered or not, by method
}

type recorded struct {
	store, method string
	code          codes.Code
	reason        string
}

func (r *recorder) option() client.Option {
	return client.WithDialOptions(grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		short := method[strings.LastIndex(method, "/")+1:]
		r.mu.Lock()
		if r.sends == nil {
			r.sends = map[string]int{}
		}
		r.sends[short]++
		r.mu.Unlock()
		err := invoker(ctx, method, req, reply, cc, opts...)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls = append(r.calls, recorded{store: cc.Target(), method: short, code: status.Code(err), reason: api.Reason(err)})
		return err
	}))
}

// count is how many recorded calls match.
func (r *recorder) count(match func(recorded) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if match(c) {
			n++
		}
	}
	return n
}

// sent is how many calls of method were sent.
func (r *recorder) sent(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sends[method]
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls, r.sends = nil, nil
}

// addrs are the client addresses of a cluster's stores.
func addrs(c *storetest.Cluster, stores ...int) []string {
	if len(stores) == 0 {
		for i := range c.N() {
			stores = append(stores, i)
		}
	}
	var out []string
	for _, i := range stores {
		out = append(out, c.Addr(i))
	}
	return out
}

// leaderOf waits for a store to lead ns and returns it.
func leaderOf(t *testing.T, c *storetest.Cluster, ns string) int {
	t.Helper()
	leader := -1
	storetest.Eventually(t, 10*time.Second, func() error {
		for i := range c.N() {
			if s := c.Store(i); s != nil {
				if st, ok := s.GroupStatus(ns); ok && st.IsLeader {
					leader = i
					return nil
				}
			}
		}
		return fmt.Errorf("%s has no leader", ns)
	}, "%s has a leader", ns)
	return leader
}

// noLeaderAt waits until store i knows no leader of ns.
func noLeaderAt(t *testing.T, c *storetest.Cluster, i int, ns string) {
	t.Helper()
	storetest.Eventually(t, 10*time.Second, func() error {
		// A group asleep does not tick, and its leader learns that it
		// lost its quorum only once it is used: a read wakes it.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, _ = c.Cas(i).Get(ctx, &kvrpc.GetRequest{Namespace: ns, Key: "wake"})
		cancel()
		if st, _ := c.Store(i).GroupStatus(ns); st.Leader != 0 {
			return fmt.Errorf("store %d sees leader %d", i+1, st.Leader)
		}
		return nil
	}, "store %d loses the leader of %s", i+1, ns)
}

// casInBackground runs a CAS that should succeed; its error (nil on
// success) comes on the channel.
func casInBackground(ctx context.Context, cl *client.Client, ns, key, value string, expected uint64) <-chan error {
	done := make(chan error, 1)
	go func() {
		res, err := cl.CompareAndSwap(ctx, ns, key, value, expected)
		if err == nil && !res.Success {
			err = fmt.Errorf("CAS = %+v", res)
		}
		done <- err
	}()
	return done
}

// waitRetried waits until at least two CAS attempts were answered as
// match says (and so the client went on after the first).
func waitRetried(t *testing.T, rec *recorder, answer string, match func(recorded) bool) {
	t.Helper()
	storetest.Eventually(t, 10*time.Second, func() error {
		if n := rec.count(func(r recorded) bool { return r.method == "CompareAndSwap" && match(r) }); n < 2 {
			return fmt.Errorf("%d %s answers", n, answer)
		}
		return nil
	}, "the CAS is answered %s and retried", answer)
}

// awaitCAS waits at most d for a CAS run by casInBackground to succeed.
func awaitCAS(t *testing.T, done <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s did not succeed within %v", what, d)
	}
}

func TestClusterAPIs(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": client.Eventual}})
	cl := newClient(t, addrs(c))
	ctx := context.Background()

	// Strong: CAS, Get, Delete.
	res, err := cl.CompareAndSwap(ctx, "default", "k", "v1", 0)
	if err != nil || !res.Success || res.Version == 0 {
		t.Fatalf("CAS create = %+v, %v", res, err)
	}
	v1 := res.Version
	res, err = cl.CompareAndSwap(ctx, "default", "k", "other", 0)
	if err != nil || res != (client.CasResult{Success: false, Version: v1, Value: "v1"}) {
		t.Fatalf("CAS on an existing key = %+v, %v; want a mismatch with version %d and v1", res, err, v1)
	}
	if res, err = cl.CompareAndSwap(ctx, "default", "k", "v2", v1); err != nil || !res.Success || res.Version <= v1 {
		t.Fatalf("CAS update = %+v, %v", res, err)
	}
	v2 := res.Version
	if got, err := cl.Get(ctx, "default", "k"); err != nil || got != (client.GetResult{Found: true, Value: "v2", Version: v2}) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if got, err := cl.Get(ctx, "default", "missing"); err != nil || got.Found {
		t.Fatalf("Get of a missing key = %+v, %v", got, err)
	}
	if d, err := cl.Delete(ctx, "default", "k", v1); err != nil || d != (client.DeleteResult{Found: true, Version: v2, Value: "v2"}) {
		t.Fatalf("Delete with a stale version = %+v, %v", d, err)
	}
	if d, err := cl.Delete(ctx, "default", "k", v2); err != nil || !d.Success || !d.Found {
		t.Fatalf("Delete = %+v, %v", d, err)
	}

	// Eventual: RawPut, RawGet, RawDelete, replicated to every store.
	ts, err := cl.RawPut(ctx, "logs", "k", "hello")
	if err != nil || ts.WallTime == 0 || ts.StoreID < 1 || ts.StoreID > 3 {
		t.Fatalf("RawPut = %+v, %v", ts, err)
	}
	storetest.Eventually(t, 10*time.Second, func() error {
		for range 3 { // the endpoints in turn: each store's replica
			if v, found, err := cl.RawGet(ctx, "logs", "k"); err != nil || !found || v != "hello" {
				return fmt.Errorf("RawGet = %q, %v, %v", v, found, err)
			}
		}
		return nil
	}, "every store has the raw write")
	if _, err := cl.RawDelete(ctx, "logs", "k"); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 10*time.Second, func() error {
		for range 3 {
			if _, found, err := cl.RawGet(ctx, "logs", "k"); err != nil || found {
				return fmt.Errorf("RawGet after RawDelete = %v, %v", found, err)
			}
		}
		return nil
	}, "every store has the delete")

	// Modes.
	if m, err := cl.GetMode(ctx, "logs"); err != nil || m.Mode != client.Eventual || m.FromDefault || m.State != "active" {
		t.Fatalf("GetMode(logs) = %+v, %v", m, err)
	}
	u, err := cl.UpdateNamespaceMode(ctx, "fresh", client.Eventual, false)
	if err != nil || !u.Changed || u.Mode != client.Eventual || u.Namespace != "fresh" {
		t.Fatalf("UpdateNamespaceMode(fresh, eventual) = %+v, %v", u, err)
	}
	if u, err = cl.UpdateNamespaceMode(ctx, "fresh", client.Eventual, false); err != nil || u.Changed {
		t.Fatalf("UpdateNamespaceMode again = %+v, %v; want no change", u, err)
	}
	storetest.Eventually(t, 10*time.Second, func() error {
		modes, err := cl.ListNamespaceModes(ctx)
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, m := range modes {
			got[m.Namespace] = m.Mode
		}
		if got["default"] != client.Strong || got["logs"] != client.Eventual || got["fresh"] != client.Eventual {
			return fmt.Errorf("modes %v", got)
		}
		return nil
	}, "every store lists the modes")

	// Typed errors.
	wrong := []error{}
	_, err = cl.CompareAndSwap(ctx, "logs", "k", "v", 0)
	wrong = append(wrong, err)
	_, err = cl.Get(ctx, "logs", "k")
	wrong = append(wrong, err)
	_, err = cl.RawPut(ctx, "default", "k", "v")
	wrong = append(wrong, err)
	for _, err := range cl.Scan(ctx, "logs", "", "") {
		wrong = append(wrong, err)
	}
	for i, err := range wrong {
		var ce *client.Error
		if !errors.Is(err, client.ErrWrongMode) || status.Code(err) != codes.FailedPrecondition || !errors.As(err, &ce) || ce.Attempts != 1 {
			t.Errorf("wrong-mode call %d = %v, want ErrWrongMode after one attempt", i, err)
		}
	}
	_, err = cl.UpdateNamespaceMode(ctx, "default", "bogus", false)
	if !errors.Is(err, client.ErrInvalidArgument) || status.Code(err) != codes.InvalidArgument {
		t.Errorf("UpdateNamespaceMode(bogus) = %v, want ErrInvalidArgument from the store", err)
	}
}

func TestClusterScan(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": client.Eventual}})
	// One endpoint: the raw writes and the raw scan see one replica.
	cl := newClient(t, addrs(c, 0))
	ctx := context.Background()
	const n = 150
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("user/%03d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := cl.CompareAndSwap(ctx, "default", want[i], "v"+want[i], 0); err != nil {
					errs <- err
				}
				if _, err := cl.RawPut(ctx, "logs", want[i], "v"+want[i]); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Keys around the prefix that a prefix scan must leave out.
	for _, k := range []string{"user.", "user0", "users"} {
		if _, err := cl.CompareAndSwap(ctx, "default", k, "x", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.RawPut(ctx, "logs", k, "x"); err != nil {
			t.Fatal(err)
		}
	}

	rec := &recorder{}
	cl = newClient(t, addrs(c, 0), rec.option())
	for _, tc := range []struct {
		name      string
		scan      func(...client.ScanOption) func(func(client.KV, error) bool)
		versioned bool
	}{
		{"Scan", func(o ...client.ScanOption) func(func(client.KV, error) bool) {
			return cl.Scan(ctx, "default", "user/", client.PrefixEnd("user/"), o...)
		}, true},
		{"RawScan", func(o ...client.ScanOption) func(func(client.KV, error) bool) {
			return cl.RawScan(ctx, "logs", "user/", client.PrefixEnd("user/"), o...)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.reset()
			var got []string
			for kv, err := range tc.scan(client.PageSize(7)) {
				if err != nil {
					t.Fatal(err)
				}
				if kv.Value != "v"+kv.Key || (kv.Version != 0) != tc.versioned {
					t.Errorf("scanned %+v", kv)
				}
				got = append(got, kv.Key)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("scanned %d keys, want %d in order: %q", len(got), len(want), got)
			}
			pages := rec.count(func(r recorded) bool { return r.method == tc.name })
			if pages != (n+6)/7 {
				t.Errorf("%d pages of 7 for %d keys, want %d", pages, n, (n+6)/7)
			}
			got = nil
			for kv, err := range tc.scan(client.PageSize(7), client.Limit(20)) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, kv.Key)
			}
			if !slices.Equal(got, want[:20]) {
				t.Errorf("scan with limit 20 = %q", got)
			}
		})
	}
}

// A store dies: calls go on through the others at once, and the dead
// store is used again once it is back. (A store that dies while it leads a
// namespace leaves the proposals that followers forwarded to it unanswered
// until a new leader is elected: calls after that go through.)
func TestClusterFailover(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": client.Eventual}})
	rec := &recorder{}
	cl := newClient(t, addrs(c), rec.option(), client.WithDownTime(200*time.Millisecond))
	ctx := context.Background()
	res, err := cl.CompareAndSwap(ctx, "default", "n", "0", 0)
	if err != nil {
		t.Fatal(err)
	}
	version := res.Version
	calls := func(phase string, round int) {
		t.Helper()
		res, err := cl.CompareAndSwap(ctx, "default", "n", fmt.Sprint(round), version)
		if err != nil || !res.Success {
			t.Fatalf("%s: CAS %d = %+v, %v", phase, round, res, err)
		}
		version = res.Version
		if g, err := cl.Get(ctx, "default", "n"); err != nil || g.Version != version {
			t.Fatalf("%s: Get %d = %+v, %v", phase, round, g, err)
		}
		if _, err := cl.RawPut(ctx, "logs", fmt.Sprint(round), "v"); err != nil {
			t.Fatalf("%s: RawPut %d: %v", phase, round, err)
		}
		if _, err := cl.GetMode(ctx, "logs"); err != nil {
			t.Fatalf("%s: GetMode %d: %v", phase, round, err)
		}
	}

	leader := leaderOf(t, c, "default")
	dead := (leader + 1) % 3
	c.Stop(dead)
	for i := range 30 {
		calls(fmt.Sprintf("store %d down", dead+1), i)
	}
	for i := range 3 {
		if i == dead {
			continue
		}
		if n := rec.count(func(r recorded) bool { return r.store == c.Addr(i) && r.method == "RawPut" }); n == 0 {
			t.Errorf("store %d took no raw write: the calls should go to the stores up in turn", i+1)
		}
	}
	c.Start(dead)
	storetest.Eventually(t, 10*time.Second, func() error {
		if _, err := cl.RawPut(ctx, "logs", "back", "v"); err != nil {
			return err
		}
		if rec.count(func(r recorded) bool { return r.store == c.Addr(dead) && r.code == codes.OK }) == 0 {
			return fmt.Errorf("no call served by store %d yet", dead+1)
		}
		return nil
	}, "calls reach the restarted store")

	// The leader dies.
	c.WaitReady()
	c.Stop(leader)
	leaderOf(t, c, "default")
	for i := range 30 {
		calls(fmt.Sprintf("leader %d down", leader+1), 100+i)
	}
}

// With no quorum a store proposes nothing: it answers NOT_APPLIED when its
// time runs out, and the client tries again until a store returns; a call
// with a deadline is held by the store and goes through when it does.
func TestClusterRetriesWhileNoQuorum(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{Configure: func(i int, cfg *store.Config) {
		cfg.RequestTimeout = 300 * time.Millisecond
	}})
	rec := &recorder{}
	// No deadline from the client: the store's own timeout applies, and
	// its answer says whether it proposed anything.
	cl := newClient(t, addrs(c), rec.option(), client.WithCallTimeout(0),
		client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 1000, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}))
	leaderOf(t, c, "default")
	c.Stop(1)
	c.Stop(2)
	noLeaderAt(t, c, 0, "default")

	done := casInBackground(context.Background(), cl, "default", "k", "v", 0)
	waitRetried(t, rec, "NOT_APPLIED", func(r recorded) bool { return r.reason == api.ReasonNotApplied })
	c.Start(1)
	awaitCAS(t, done, 20*time.Second, "the CAS retried while there was no quorum")
	// The CAS expected the key absent: had an earlier attempt been
	// applied, the last one would have been a mismatch, not a success.
	g, err := cl.Get(context.Background(), "default", "k")
	if err != nil || !g.Found || g.Value != "v" {
		t.Fatalf("Get after the retried CAS = %+v, %v", g, err)
	}

	// With a deadline, the store holds the call until a leader comes.
	c.Stop(1)
	noLeaderAt(t, c, 0, "default")
	rec.reset()
	cl = newClient(t, addrs(c, 0), rec.option())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done = casInBackground(ctx, cl, "default", "k", "v2", g.Version)
	storetest.Eventually(t, 10*time.Second, func() error {
		if rec.sent("CompareAndSwap") == 0 {
			return errors.New("not sent yet")
		}
		return nil
	}, "the CAS is sent")
	c.Start(2)
	awaitCAS(t, done, 25*time.Second, "the CAS with a deadline while there was no quorum")
	if n := rec.count(func(r recorded) bool { return r.method == "CompareAndSwap" }); n != 1 {
		t.Errorf("the CAS with a deadline took %d attempts, want 1 (held by the store)", n)
	}
}

// A write proposed by a leader cut off from its followers may or may not
// commit: the client says so and does not send it again. Once the store
// knows it has no leader, it proposes nothing, and the client retries.
func TestClusterOutcomeUnknown(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{Configure: func(i int, cfg *store.Config) {
		cfg.RequestTimeout = time.Second
	}})
	leader := leaderOf(t, c, "default")
	rec := &recorder{}
	cl := newClient(t, addrs(c, leader), rec.option(), client.WithCallTimeout(0), fastRetries())
	c.Links.Isolate(uint64(leader+1), 3)
	t.Cleanup(c.Links.Heal)

	_, err := cl.CompareAndSwap(context.Background(), "default", "k", "v", 0)
	var ce *client.Error
	if !errors.Is(err, client.ErrOutcomeUnknown) || errors.Is(err, client.ErrUnavailable) || status.Code(err) != codes.Unavailable ||
		api.Reason(err) != api.ReasonOutcomeUnknown || !errors.As(err, &ce) || ce.Attempts != 1 {
		t.Fatalf("CAS on an isolated leader = %v, want ErrOutcomeUnknown after one attempt (the store's OUTCOME_UNKNOWN)", err)
	}
	if n := rec.count(func(r recorded) bool { return r.method == "CompareAndSwap" }); n != 1 {
		t.Errorf("the CAS was sent %d times, want once", n)
	}

	noLeaderAt(t, c, leader, "default")
	rec.reset()
	cl = newClient(t, addrs(c, leader), rec.option(), client.WithCallTimeout(0),
		client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond}))
	_, err = cl.CompareAndSwap(context.Background(), "default", "k", "v", 0)
	if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrOutcomeUnknown) || api.Reason(err) != api.ReasonNotApplied {
		t.Fatalf("CAS on a store without a leader = %v, want ErrUnavailable (NOT_APPLIED)", err)
	}
	if n := rec.count(func(r recorded) bool { return r.method == "CompareAndSwap" && r.reason == api.ReasonNotApplied }); n != 3 {
		t.Errorf("%d NOT_APPLIED attempts, want 3", n)
	}
}

// During an eventual -> strong switch that waits for a store that is down,
// writes are answered Aborted; the client retries them until the switch
// is done.
func TestClusterRetriesDuringSwitch(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"sw": client.Eventual}})
	rec := &recorder{}
	cl := newClient(t, addrs(c, 0, 1), rec.option(),
		client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 1000, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}))
	ctx := context.Background()
	if _, err := cl.RawPut(ctx, "sw", "before", "v"); err != nil {
		t.Fatal(err)
	}
	c.Stop(2)
	if u, err := cl.UpdateNamespaceMode(ctx, "sw", client.Strong, false); err != nil || !u.Changed {
		t.Fatalf("UpdateNamespaceMode(sw, strong) = %+v, %v", u, err)
	}
	storetest.Eventually(t, 10*time.Second, func() error {
		if m, err := cl.GetMode(ctx, "sw"); err != nil || m.State != "switching" {
			return fmt.Errorf("mode %+v, %v", m, err)
		}
		return nil
	}, "the switch waits for store 3")

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := casInBackground(cctx, cl, "sw", "after", "v", 0)
	waitRetried(t, rec, "Aborted", func(r recorded) bool { return r.code == codes.Aborted })
	c.Start(2)
	awaitCAS(t, done, 30*time.Second, "the CAS retried during the switch")
	if g, err := cl.Get(ctx, "sw", "before"); err != nil || !g.Found {
		t.Errorf("the raw write from before the switch: %+v, %v", g, err)
	}
}

// Strong calls go straight to the leader once a store names it.
func TestClusterLeaderRouting(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	leader := leaderOf(t, c, "default")
	follower := (leader + 1) % 3
	rec := &recorder{}
	// Only a follower is given: the leader is learned, and connected to.
	cl := newClient(t, addrs(c, follower), rec.option())
	ctx := context.Background()
	if _, err := cl.Get(ctx, "default", "k"); err != nil {
		t.Fatal(err)
	}
	got, ok := cl.Leader("default")
	if !ok {
		t.Fatalf("the store did not name the leader (rdb-leader response metadata)")
	}
	if got != c.Addr(leader) {
		t.Fatalf("Leader(default) = %s, want store %d's address %s", got, leader+1, c.Addr(leader))
	}
	rec.reset()
	version := uint64(0)
	for i := range 20 {
		res, err := cl.CompareAndSwap(ctx, "default", "k", fmt.Sprint(i), version)
		if err != nil || !res.Success {
			t.Fatalf("CAS = %+v, %v", res, err)
		}
		version = res.Version
		if _, err := cl.Get(ctx, "default", "k"); err != nil {
			t.Fatal(err)
		}
	}
	if n, all := rec.count(func(r recorded) bool { return r.store == c.Addr(leader) }), rec.count(func(recorded) bool { return true }); n != all || all != 40 {
		t.Errorf("%d of %d strong calls went to the leader, want all 40", n, all)
	}

	// The leader dies: once another is elected, calls go on (through the
	// follower, which passes them on), and the new leader is learned.
	c.Stop(leader)
	next := leaderOf(t, c, "default")
	res, err := cl.CompareAndSwap(ctx, "default", "k", "after", version)
	if err != nil || !res.Success {
		t.Fatalf("CAS after the leader died = %+v, %v", res, err)
	}
	storetest.Eventually(t, 10*time.Second, func() error {
		if _, err := cl.Get(ctx, "default", "k"); err != nil {
			return err
		}
		if got, _ := cl.Leader("default"); got != c.Addr(next) {
			return fmt.Errorf("leader %q, want %s", got, c.Addr(next))
		}
		return nil
	}, "the client learns the new leader")
}

// The batch calls against a store that serves them: applied and
// replicated as a unit, read back in the order asked.
func TestClusterBatch(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": client.Eventual}})
	cl := newClient(t, addrs(c, 0))
	ctx := context.Background()
	var pairs []client.KV
	var keys []string
	for i := range 100 {
		pairs = append(pairs, client.KV{Key: fmt.Sprintf("b%03d", i), Value: fmt.Sprint(i)})
		keys = append(keys, fmt.Sprintf("b%03d", i))
	}
	w, err := cl.RawBatchPut(ctx, "logs", pairs)
	if err != nil || w.First.WallTime == 0 || !before(w.First, w.Last) {
		t.Fatalf("RawBatchPut = %+v, %v; want the first pair's timestamp before the last's", w, err)
	}
	for i := range c.N() {
		one := newClient(t, addrs(c, i))
		storetest.Eventually(t, 10*time.Second, func() error {
			got, err := one.RawBatchGet(ctx, "logs", append([]string{"nope"}, keys...))
			if err != nil {
				return err
			}
			if !slices.Equal(got, pairs) {
				return fmt.Errorf("store %d has %d of the pairs", i+1, len(got))
			}
			return nil
		}, "store %d has the batch", i+1)
	}
	if _, err := cl.RawBatchDelete(ctx, "logs", keys[:50]); err != nil {
		t.Fatal(err)
	}
	if got, err := cl.RawBatchGet(ctx, "logs", keys); err != nil || !slices.Equal(got, pairs[50:]) {
		t.Fatalf("RawBatchGet after deleting half = %d pairs, %v", len(got), err)
	}
	version := map[string]uint64{}
	for _, k := range []string{"x", "y"} {
		r, err := cl.CompareAndSwap(ctx, "default", k, "v"+k, 0)
		if err != nil || !r.Success {
			t.Fatalf("CAS %s = %+v, %v", k, r, err)
		}
		version[k] = r.Version
	}
	got, err := cl.BatchGet(ctx, "default", []string{"y", "missing", "x", "y"})
	want := []client.KV{{Key: "y", Value: "vy", Version: version["y"]}, {Key: "x", Value: "vx", Version: version["x"]}, {Key: "y", Value: "vy", Version: version["y"]}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("BatchGet = %+v, %v; want %+v", got, err, want)
	}
}

func before(a, b client.Timestamp) bool {
	if a.WallTime != b.WallTime {
		return a.WallTime < b.WallTime
	}
	if a.Logical != b.Logical {
		return a.Logical < b.Logical
	}
	return a.StoreID < b.StoreID
}

func TestClusterTLS(t *testing.T) {
	certs := storetest.NewCerts(t, 1)
	c := storetest.NewCluster(t, 1, storetest.Options{Certs: certs})
	ctx := context.Background()

	app := newClient(t, addrs(c), client.WithTLSFiles(certs.Client("app")))
	if res, err := app.CompareAndSwap(ctx, "default", "k", "v", 0); err != nil || !res.Success {
		t.Fatalf("CAS with TLS = %+v, %v", res, err)
	}
	// Mode changes need an admin's certificate: refused, not retried.
	if _, err := app.UpdateNamespaceMode(ctx, "other", client.Eventual, false); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("UpdateNamespaceMode as a client = %v, want PermissionDenied", err)
	}
	cfg, err := certs.Client("admin").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	admin := newClient(t, addrs(c), client.WithTLS(cfg))
	if u, err := admin.UpdateNamespaceMode(ctx, "other", client.Eventual, false); err != nil || !u.Changed {
		t.Fatalf("UpdateNamespaceMode as admin = %+v, %v", u, err)
	}
	// Without TLS no connection is made: nothing is sent.
	plain := newClient(t, addrs(c), client.WithDialTimeout(500*time.Millisecond))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := plain.CompareAndSwap(cctx, "default", "k2", "v", 0); !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("CAS without TLS = %v, want ErrUnavailable", err)
	}
	if _, err := client.New(addrs(c), client.WithTLSFiles(certs.Client("admin")), client.WithTLS(cfg)); err == nil {
		t.Error("New with TLS given twice succeeded")
	}
}
