package store_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdctl"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/storetest"
	"github.com/rdb-project/rdb/store/testseed"
)

// pdCluster starts a PD of pdN members that drives mode switches, and
// three PD-mode stores seeded with logs=eventual.
func pdCluster(t *testing.T, pdN int) (*pdtest.Cluster, *storetest.Cluster) {
	t.Helper()
	pd := pdtest.NewCluster(t, pdN, pdtest.WithDriver(func(int) server.Driver { return switchdriver.New(nil, 50*time.Millisecond) }))
	c := storetest.NewCluster(t, 3, storetest.Options{
		PD:             strings.Split(pd.Endpoints(), ","),
		NamespaceModes: map[string]string{"logs": "eventual"},
	})
	return pd, c
}

// runPdctl runs the pdctl command tree in-process.
func runPdctl(t *testing.T, pd *pdtest.Cluster, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := pdctl.Run(context.Background(), append([]string{"--pd", pd.Endpoints()}, args...), &out, &errb); code != 0 {
		t.Fatalf("pdctl %v: exit %d: %s", args, code, errb.String())
	}
	return out.String()
}

func waitModeEverywhere(t *testing.T, c *storetest.Cluster, ns, mode string, within time.Duration) {
	t.Helper()
	for i := range c.N() {
		if c.Store(i) != nil {
			waitMode(t, c, i, ns, mode, "", within)
		}
	}
}

// waitMode waits until store i lists ns with mode and, if state is set,
// that state.
func waitMode(t *testing.T, c *storetest.Cluster, i int, ns, mode, state string, within time.Duration) {
	t.Helper()
	storetest.Eventually(t, within, func() error {
		if m := modesOf(t, c, i)[ns]; m.GetMode() != mode || (state != "" && m.GetState() != state) {
			return fmt.Errorf("store %d: %s = %v", i+1, ns, m)
		}
		return nil
	}, "store %d has %s %s %s", i+1, ns, mode, state)
}

// TestPDModeRollout: pdctl changes the mode on every store by itself, and
// UpdateNamespaceMode sent to one store goes through PD to all of them.
// It also measures the rollout time (command to the last store's apply)
// over 100 switches.
func TestPDModeRollout(t *testing.T) {
	pd, c := pdCluster(t, 1)
	waitModeEverywhere(t, c, "logs", "eventual", 10*time.Second)
	runPdctl(t, pd, "namespace", "set", "logs", "strong")
	waitModeEverywhere(t, c, "logs", "strong", time.Second)
	out := runPdctl(t, pd, "namespace", "set", "logs", "strong", "-o", "json")
	if !strings.Contains(out, `"changed": false`) {
		t.Fatalf("setting the same mode again: %s", out)
	}

	ctx := ctxT(t, time.Minute)
	up, err := c.Modes(1).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "eventual"})
	if err != nil || !up.GetChanged() {
		t.Fatalf("UpdateNamespaceMode via store 2 = %v, %v", up, err)
	}
	waitModeEverywhere(t, c, "logs", "eventual", time.Second)

	if testing.Short() {
		return
	}
	var times []time.Duration
	for n := range 100 {
		mode := []string{"strong", "eventual"}[n%2]
		start := time.Now()
		r, err := c.Modes(n%3).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "roll", Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			for {
				if row, ok := c.Store(i).NamespaceRow("roll"); ok && row.GetVersion() >= r.GetVersion() {
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("switch %d not applied on store %d", n, i+1)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	t.Logf("rollout over %d switches (command to the last store's apply): median %v, p99 %v, max %v",
		len(times), times[len(times)/2], times[len(times)*99/100-1], times[len(times)-1])
}

// TestPDModeStoreDownDuringChange: a store that is down while the mode
// changes applies the change when it comes back.
func TestPDModeStoreDownDuringChange(t *testing.T) {
	pd, c := pdCluster(t, 1)
	c.Stop(2)
	runPdctl(t, pd, "namespace", "set", "logs", "strong")
	runPdctl(t, pd, "namespace", "set", "audit", "eventual")
	waitModeEverywhere(t, c, "logs", "strong", 5*time.Second)
	c.Start(2)
	waitModeEverywhere(t, c, "logs", "strong", 10*time.Second)
	waitModeEverywhere(t, c, "audit", "eventual", 10*time.Second)
}

// TestPDDownStoresKeepServing: with every PD member stopped, stores keep
// serving reads and writes in both modes with their last table, and catch
// up when PD returns.
func TestPDDownStoresKeepServing(t *testing.T) {
	pd, c := pdCluster(t, 1)
	waitModeEverywhere(t, c, "logs", "eventual", 10*time.Second)
	ctx := ctxT(t, time.Minute)
	// Make sure the default group exists everywhere before PD goes.
	if _, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "before", Value: "1"}); err != nil {
		t.Fatal(err)
	}
	pd.Stop(0)
	for i := range 3 {
		r, err := c.Cas(i).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("k%d", i), Value: "v"})
		if err != nil || !r.GetSuccess() {
			t.Fatalf("CAS on store %d without PD = %v, %v", i+1, r, err)
		}
		if _, err := c.Raw(i).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: fmt.Sprintf("k%d", i), Value: "v"}); err != nil {
			t.Fatalf("RawPut on store %d without PD: %v", i+1, err)
		}
	}
	for i := range 3 {
		g, err := c.Cas(i).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: "k2"})
		if err != nil || g.GetValue() != "v" {
			t.Fatalf("Get on store %d without PD = %v, %v", i+1, g, err)
		}
		storetest.Eventually(t, 5*time.Second, func() error {
			g, err := c.Raw(i).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "logs", Key: "k0"})
			if err != nil || g.GetValue() != "v" {
				return fmt.Errorf("RawGet = %v, %v", g, err)
			}
			return nil
		}, "RawGet on store %d without PD", i+1)
	}
	// A store restarted while PD is down serves with its persisted table.
	c.Restart(1)
	if m := modesOf(t, c, 1)["logs"]; m.GetMode() != "eventual" {
		t.Fatalf("restarted store without PD has logs = %v", m)
	}
	pd.Restart(0)
	pd.WaitLeader()
	runPdctl(t, pd, "namespace", "set", "logs", "strong")
	waitModeEverywhere(t, c, "logs", "strong", 10*time.Second)
}

// TestPDLeaderLoss: with three PD members, crashing the leader leaves pdctl
// working within a few seconds, and no change is lost.
func TestPDLeaderLoss(t *testing.T) {
	pd, c := pdCluster(t, 3)
	runPdctl(t, pd, "namespace", "set", "audit", "eventual")
	leader := pd.WaitLeader()
	pd.Kill(leader) // a crash: the others take over when its lease expires
	start := time.Now()
	storetest.Eventually(t, 15*time.Second, func() error {
		var out, errb bytes.Buffer
		if code := pdctl.Run(context.Background(), []string{"--pd", pd.Endpoints(), "namespace", "set", "logs", "strong"}, &out, &errb); code != 0 {
			return fmt.Errorf("exit %d: %s", code, errb.String())
		}
		return nil
	}, "pdctl works after the PD leader stopped")
	t.Logf("pdctl worked again %v after the PD leader crashed", time.Since(start))
	waitModeEverywhere(t, c, "logs", "strong", 10*time.Second)
	waitModeEverywhere(t, c, "audit", "eventual", 10*time.Second)
	if out := runPdctl(t, pd, "namespace", "get", "audit"); !strings.Contains(out, "eventual") {
		t.Fatalf("a change made before the failover is gone: %s", out)
	}
}

// TestPDSwitchUnderLoadLosesNothing is the switch check of the eventual
// tests, driven by pdctl.
func TestPDSwitchUnderLoadLosesNothing(t *testing.T) {
	seed := testseed.For(t, 192)
	pd, c := pdCluster(t, 1)
	waitModeEverywhere(t, c, "logs", "eventual", 10*time.Second)
	ctx := ctxT(t, 2*time.Minute)
	log := &writeLog{latest: map[string]ackedWrite{}}
	stop := make(chan struct{})
	wg := rawWriters(t, c, "logs", seed, stop, log)
	storetest.Eventually(t, 10*time.Second, func() error {
		log.mu.Lock()
		defer log.mu.Unlock()
		if log.n < 300 {
			return fmt.Errorf("%d writes", log.n)
		}
		return nil
	}, "writes flow")
	runPdctl(t, pd, "namespace", "set", "logs", "strong", "--wait")
	close(stop)
	wg.Wait()
	t.Logf("%d raw writes acknowledged across the switch", log.n)
	for key, w := range log.latest {
		g, err := c.Cas(int(w.ts.StoreID)%3).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: key})
		if err != nil || g.GetValue() != w.value {
			t.Fatalf("key %s: latest acknowledged write %q, Get = %v, %v", key, w.value, g, err)
		}
	}
	runPdctl(t, pd, "namespace", "set", "logs", "eventual", "--wait")
	for i := range 3 {
		storetest.Eventually(t, 10*time.Second, func() error {
			for key, w := range log.latest {
				g, err := c.Raw(i).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "logs", Key: key})
				if err != nil || g.GetValue() != w.value {
					return fmt.Errorf("RawGet %s = %v, %v; want %q", key, g, err, w.value)
				}
			}
			return nil
		}, "store %d holds every value after switching back", i+1)
	}
}

// TestPDLeaderChangeResumesHeldSwitch: an eventual → strong switch held by
// a stopped store survives a crash of the PD leader; the new leader
// resumes it once the store is back, and no write is lost.
func TestPDLeaderChangeResumesHeldSwitch(t *testing.T) {
	pd, c := pdCluster(t, 3)
	waitModeEverywhere(t, c, "logs", "eventual", 10*time.Second)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "k", Value: "before"}); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 10*time.Second, func() error {
		g, err := c.Raw(2).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "logs", Key: "k"})
		if err != nil || g.GetValue() != "before" {
			return fmt.Errorf("RawGet on store 3 = %v, %v", g, err)
		}
		return nil
	}, "store 3 holds logs/k")
	c.Stop(2)
	runPdctl(t, pd, "namespace", "set", "logs", "strong")
	// Stores 1 and 2 fence and wait: the switch is held for store 3.
	for i := range 2 {
		waitMode(t, c, i, "logs", "strong", "switching", 10*time.Second)
	}
	storetest.Consistently(t, time.Second, func() error {
		if m := modesOf(t, c, 0)["logs"]; m.GetState() != "switching" {
			return fmt.Errorf("logs = %v with store 3 down", m)
		}
		return nil
	}, "the switch waits for store 3")

	leader := pd.WaitLeader()
	pd.Kill(leader)
	c.Start(2)
	// The new PD leader resumes the switch.
	for i := range 3 {
		waitMode(t, c, i, "logs", "strong", "active", 30*time.Second)
	}
	g, err := c.Cas(1).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: "k"})
	if err != nil || g.GetValue() != "before" {
		t.Fatalf("Get logs/k after the switch = %v, %v", g, err)
	}
}
