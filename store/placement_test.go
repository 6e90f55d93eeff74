package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/report"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// placedCluster starts a PD that places three replicas of each namespace,
// declares a silent store down after 3s, and the given number of PD-mode
// stores, each configured by configure (nil: as they come).
func placedCluster(t *testing.T, stores int, configure func(i int, cfg *store.Config)) (*pdtest.Cluster, *storetest.Cluster, *pdclient.Client) {
	t.Helper()
	pd := pdtest.NewCluster(t, 1,
		pdtest.WithDriver(func(int) server.Driver { return switchdriver.New(nil, 50*time.Millisecond) }),
		func(_ int, cfg *server.Config) {
			cfg.ReplicationFactor = 3
			cfg.StoreDownAfter = time.Second
			cfg.MaxStoreDownTime = 3 * time.Second
			cfg.ScheduleInterval = 200 * time.Millisecond
			cfg.FormSettle = 500 * time.Millisecond
		})
	c := storetest.NewCluster(t, stores, storetest.Options{PD: strings.Split(pd.Endpoints(), ","), Configure: configure})
	cli := pd.Client()
	t.Cleanup(func() { _ = cli.Close() })
	return pd, c, cli
}

// placement waits until every namespace has exactly its three replicas,
// none on a store in exclude, and its group's voters (as its leader says)
// are those replicas.
func waitPlaced(t *testing.T, cli *pdclient.Client, names []string, exclude []uint64, within time.Duration) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	storetest.Eventually(t, within, func() error {
		for _, ns := range names {
			st, err := cli.GetNamespace(ctxT(t, 5*time.Second), ns, false)
			if err != nil {
				return err
			}
			r := st.GetRecord().GetReplicas()
			strong := st.GetRecord().GetMode() == "strong"
			if len(r) != 3 || st.GetMoving() || st.GetUnderReplicated() || (strong && st.GetLeader() == 0) {
				return fmt.Errorf("%s: replicas %v moving %v under-replicated %v leader %d", ns, r, st.GetMoving(), st.GetUnderReplicated(), st.GetLeader())
			}
			for _, x := range exclude {
				if slices.Contains(r, x) {
					return fmt.Errorf("%s still on store %d: %v", ns, x, r)
				}
			}
			out[ns] = slices.Sorted(slices.Values(r))
		}
		return nil
	}, "every namespace placed on three stores")
	return out
}

// TestPlacement: PD places three replicas of each namespace over five
// stores, spread within one of the mean; any store answers for any
// namespace (it forwards what it does not hold); a store that dies is
// replaced on the others and every write stays readable; a store removed
// with RemoveStore ends removed, holding nothing.
func TestPlacement(t *testing.T) {
	// No sweep hides a change a store failed to note (reportsMatch).
	sweep := report.SweepEvery
	report.SweepEvery = 1 << 30
	t.Cleanup(func() { report.SweepEvery = sweep })
	pd, c, cli := placedCluster(t, 5, nil)
	c.WaitReady()
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprintf("p%d", i))
	}
	// Each namespace is created and written through a different store.
	for i, ns := range names {
		ctx := ctxT(t, 20*time.Second)
		storetest.Eventually(t, 20*time.Second, func() error {
			_, err := c.Cas(i%c.N()).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: ns, Key: "k", Value: ns, ExpectedVersion: 0})
			return err
		}, "create and write %s", ns)
	}
	// Eventual namespaces, written through every store.
	var evs []string
	for i := range 5 {
		ns := fmt.Sprintf("e%d", i)
		evs = append(evs, ns)
		if _, err := cli.SetNamespaceMode(ctxT(t, 5*time.Second), &pdpb.SetNamespaceModeRequest{Name: ns, Mode: "eventual"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range evs {
		for i := range c.N() {
			storetest.Eventually(t, 20*time.Second, func() error {
				_, err := c.Raw(i).RawPut(ctxT(t, 5*time.Second), &kvrpc.RawPutRequest{Namespace: ns, Key: fmt.Sprintf("k%d", i), Value: ns})
				return err
			}, "raw put %s through store %d", ns, i+1)
		}
	}
	// Every replica has every write before any store is lost: a write
	// only one store had taken would go with it.
	rawEverywhere := func(stores []int) {
		t.Helper()
		for _, ns := range evs {
			for _, i := range stores {
				for k := range c.N() {
					storetest.Eventually(t, 20*time.Second, func() error {
						resp, err := c.Raw(i).RawGet(ctxT(t, 5*time.Second), &kvrpc.RawGetRequest{Namespace: ns, Key: fmt.Sprintf("k%d", k)})
						if err != nil {
							return err
						}
						if !resp.GetFound() || resp.GetValue() != ns {
							return fmt.Errorf("%s/k%d = %v", ns, k, resp)
						}
						return nil
					}, "store %d reads %s/k%d", i+1, ns, k)
				}
			}
		}
	}
	waitPlaced(t, cli, append(names, evs...), nil, 30*time.Second)
	reportsMatch(t, pd, c)
	rawEverywhere([]int{0, 1, 2, 3, 4})
	readAll := func(skip ...int) {
		t.Helper()
		for i := range c.N() {
			if slices.Contains(skip, i) || !c.Running(i) {
				continue
			}
			for _, ns := range names {
				var resp *kvrpc.GetResponse
				storetest.Eventually(t, 20*time.Second, func() error {
					var err error
					resp, err = c.Cas(i).Get(ctxT(t, 5*time.Second), &kvrpc.GetRequest{Namespace: ns, Key: "k"})
					return err
				}, "read %s through store %d", ns, i+1)
				if !resp.GetFound() || resp.GetValue() != ns {
					t.Fatalf("store %d reads %s/k = %v", i+1, ns, resp)
				}
			}
		}
	}
	readAll()

	// pdctl shows the placement.
	var got struct {
		Replicas []uint64 `json:"replicas"`
		Leader   uint64   `json:"leader"`
	}
	if err := json.Unmarshal([]byte(runPdctl(t, pd, "namespace", "get", "p0", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Replicas) != 3 || !slices.Contains(got.Replicas, got.Leader) {
		t.Fatalf("pdctl namespace get p0: %+v", got)
	}
	// Replica counts per store end within one of each other (16
	// namespaces with the default one, 3 replicas each).
	storetest.Eventually(t, 30*time.Second, func() error {
		var stores struct {
			Stores []struct {
				ID           uint64 `json:"id"`
				State        string `json:"state"`
				ReplicaCount int    `json:"replica_count"`
			} `json:"stores"`
		}
		if err := json.Unmarshal([]byte(runPdctl(t, pd, "store", "list", "-o", "json")), &stores); err != nil {
			return err
		}
		total, lo, hi := 0, 1<<30, 0
		for _, st := range stores.Stores {
			total += st.ReplicaCount
			lo, hi = min(lo, st.ReplicaCount), max(hi, st.ReplicaCount)
			if st.State != "up" {
				return fmt.Errorf("store %d is %s", st.ID, st.State)
			}
		}
		if total != 48 || hi-lo > 1 {
			return fmt.Errorf("replica counts %+v", stores.Stores)
		}
		return nil
	}, "replica counts balanced")

	// Store 5 dies: its replicas are re-created on the others.
	c.Stop(4)
	placed := waitPlaced(t, cli, append(names, evs...), []uint64{5}, time.Minute)
	readAll(4)
	rawEverywhere([]int{0, 1, 2, 3})
	reportsMatch(t, pd, c)
	t.Logf("after store 5 died: %v", placed)

	// Store 4 is removed while up: it ends removed and holds nothing.
	if _, err := cli.RemoveStore(ctxT(t, 5*time.Second), 4); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, time.Minute, func() error {
		list, err := cli.ListStores(ctxT(t, 5*time.Second))
		if err != nil {
			return err
		}
		for _, st := range list {
			if st.GetId() == 4 && st.GetState() != "removed" {
				return fmt.Errorf("store 4 is %s with %d groups", st.GetState(), len(st.GetGroups()))
			}
		}
		return nil
	}, "store 4 removed")
	waitPlaced(t, cli, append(names, evs...), []uint64{4, 5}, time.Minute)
	if n := c.Store(3).Replicas(); n != 0 {
		t.Fatalf("removed store 4 still holds %d replicas", n)
	}
	readAll(3, 4)
	rawEverywhere([]int{0, 1, 2})
	reportsMatch(t, pd, c)

	// A placed eventual namespace switches to strong on its replicas and
	// keeps every write.
	if _, err := cli.SetNamespaceMode(ctxT(t, 5*time.Second), &pdpb.SetNamespaceModeRequest{Name: "e0", Mode: "strong"}); err != nil {
		t.Fatal(err)
	}
	for k := range c.N() {
		storetest.Eventually(t, 30*time.Second, func() error {
			resp, err := c.Cas(0).Get(ctxT(t, 5*time.Second), &kvrpc.GetRequest{Namespace: "e0", Key: fmt.Sprintf("k%d", k)})
			if err != nil {
				return err
			}
			if !resp.GetFound() || resp.GetValue() != "e0" {
				t.Fatalf("after the switch, e0/k%d = %v", k, resp)
			}
			return nil
		}, "e0 strong, k%d read", k)
	}
	reportsMatch(t, pd, c)
}

// reportsMatch waits until what PD holds of each running store's report,
// which heartbeats carry as changes (only the entries the store noted as
// changed), equals the store's whole report.
func reportsMatch(t *testing.T, pd *pdtest.Cluster, c *storetest.Cluster) {
	t.Helper()
	storetest.Eventually(t, 20*time.Second, func() error {
		srv := pd.Server(pd.WaitLeader())
		for i := range c.N() {
			s := c.Store(i)
			if s == nil {
				continue
			}
			want := store.WholeReport(s)
			got, ok := srv.StoreReport(uint64(i + 1))
			if !ok {
				return fmt.Errorf("PD holds no report of store %d", i+1)
			}
			if err := sameEntries(want.Namespaces, got.Namespaces); err != nil {
				return fmt.Errorf("store %d: namespace %w", i+1, err)
			}
			if err := sameEntries(want.Groups, got.Groups); err != nil {
				return fmt.Errorf("store %d: group %w", i+1, err)
			}
		}
		return nil
	}, "PD holds every store's report as it is")
}

// sameEntries says which entry of a store's whole report PD holds
// otherwise, if any.
func sameEntries[K comparable, V proto.Message](want, got map[K]V) error {
	for k, w := range want {
		if g, ok := got[k]; !ok || !proto.Equal(g, w) {
			return fmt.Errorf("%v is reported as %v, PD holds %v", k, w, g)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			return fmt.Errorf("%v is not reported, PD holds it", k)
		}
	}
	return nil
}
