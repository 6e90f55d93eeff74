package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// TestRepairGroupsFormedWithoutAStore: a store silent past
// --store-disconnect-after (but not down) is left out of the groups formed
// meanwhile, which get two voters instead of three. Once it heartbeats
// again, the scheduler adds it to every one of them, more of them than
// --max-concurrent-moves: groups waiting for a replica are not moves in
// progress, and must not use up the budget of moves that would repair them.
func TestRepairGroupsFormedWithoutAStore(t *testing.T) {
	const maxMoves = 2
	pd := pdtest.NewCluster(t, 1,
		pdtest.WithDriver(func(int) server.Driver { return switchdriver.New(nil, 50*time.Millisecond) }),
		func(_ int, cfg *server.Config) {
			cfg.ReplicationFactor = 3
			cfg.StoreDownAfter = time.Second
			cfg.MaxStoreDownTime = 10 * time.Minute // silent, never down: nothing is replaced
			cfg.MaxConcurrentMoves = maxMoves
			cfg.ScheduleInterval = 200 * time.Millisecond
			cfg.FormSettle = 500 * time.Millisecond
		})
	c := storetest.NewCluster(t, 3, storetest.Options{PD: strings.Split(pd.Endpoints(), ",")})
	cli := pd.Client()
	t.Cleanup(func() { _ = cli.Close() })
	c.WaitReady()

	create := func(ns string) {
		t.Helper()
		storetest.Eventually(t, 20*time.Second, func() error {
			_, err := c.Cas(0).CompareAndSwap(ctxT(t, 5*time.Second), &kvrpc.CasRequest{Namespace: ns, Key: "k", Value: ns, ExpectedVersion: 0})
			return err
		}, "create and write %s", ns)
	}
	names := []string{"before"}
	create("before")
	waitPlaced(t, cli, names, nil, 30*time.Second)

	// Store 3 goes silent: PD no longer counts it up.
	c.Stop(2)
	storetest.Eventually(t, 10*time.Second, func() error {
		st, err := cli.GetClusterStatus(ctxT(t, 5*time.Second))
		if err != nil {
			return err
		}
		if st.GetStoresUp() != 2 {
			return fmt.Errorf("%d stores up", st.GetStoresUp())
		}
		return nil
	}, "PD counts store 3 out")

	// Groups formed now get the two stores that are up, and are under-
	// replicated: several times the moves allowed at once.
	var formed []string
	for i := range 4 * maxMoves {
		ns := fmt.Sprintf("silent%d", i)
		create(ns)
		formed = append(formed, ns)
	}
	for _, ns := range formed {
		st, err := cli.GetNamespace(ctxT(t, 5*time.Second), ns, false)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.GetRecord().GetReplicas(); len(r) != 2 || slices.Contains(r, 3) || !st.GetUnderReplicated() {
			t.Fatalf("%s formed while store 3 was silent: replicas %v, under-replicated %v", ns, r, st.GetUnderReplicated())
		}
	}
	names = append(names, formed...)

	// Store 3 heartbeats again: every group ends with three voters on the
	// three stores, and PD shows nothing under-replicated or moving.
	c.Start(2)
	waitPlaced(t, cli, names, nil, 60*time.Second)
	storetest.Eventually(t, 30*time.Second, func() error {
		st, err := cli.GetClusterStatus(ctxT(t, 5*time.Second))
		if err != nil {
			return err
		}
		if n, m := len(st.GetUnderReplicated()), len(st.GetMoving()); n+m > 0 {
			return fmt.Errorf("%d under-replicated, %d moving", n, m)
		}
		return nil
	}, "PD shows every namespace placed")
	storetest.Eventually(t, 30*time.Second, func() error {
		for _, ns := range names {
			if err := threeVoters(c, ns); err != nil {
				return err
			}
		}
		return nil
	}, "every group has three voters, as its leader applied them")
}

// threeVoters checks that some store leads ns's group and has applied a
// membership of voters 1, 2 and 3 and no learner.
func threeVoters(c *storetest.Cluster, ns string) error {
	for i := range c.N() {
		s := c.Store(i)
		if s == nil {
			continue
		}
		for _, g := range store.WholeReport(s).Groups {
			if g.GetNamespace() != ns || g.GetLeader() != uint64(i+1) {
				continue
			}
			if v := slices.Sorted(slices.Values(g.GetVoters())); !slices.Equal(v, []uint64{1, 2, 3}) || len(g.GetLearners()) > 0 {
				return fmt.Errorf("%s: leader %d has voters %v learners %v", ns, i+1, v, g.GetLearners())
			}
			return nil
		}
	}
	return fmt.Errorf("%s: no store leads its group", ns)
}
