package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store/storetest"
)

// placedCluster starts a PD that places three replicas of each namespace,
// declares a silent store down after 3s, and five PD-mode stores.
func placedCluster(t *testing.T, stores int) (*pdtest.Cluster, *storetest.Cluster, *pdclient.Client) {
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
	c := storetest.NewCluster(t, stores, storetest.Options{PD: strings.Split(pd.Endpoints(), ",")})
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
			if len(r) != 3 || st.GetMoving() || st.GetUnderReplicated() || st.GetLeader() == 0 {
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
	pd, c, cli := placedCluster(t, 5)
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
	placed := waitPlaced(t, cli, names, nil, 30*time.Second)
	counts := map[uint64]int{}
	for _, r := range placed {
		for _, id := range r {
			counts[id]++
		}
	}
	// The default namespace is placed too: 11 namespaces, 33 replicas.
	for id, n := range counts {
		if n < 5 || n > 8 {
			t.Errorf("store %d holds %d of the test's namespaces: %v", id, n, counts)
		}
	}
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
	var stores struct {
		Stores []struct {
			ID           uint64 `json:"id"`
			State        string `json:"state"`
			ReplicaCount int    `json:"replica_count"`
			LeaderCount  int    `json:"leader_count"`
		} `json:"stores"`
	}
	if err := json.Unmarshal([]byte(runPdctl(t, pd, "store", "list", "-o", "json")), &stores); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, st := range stores.Stores {
		total += st.ReplicaCount
		if st.State != "up" {
			t.Fatalf("pdctl store list: %+v", stores)
		}
	}
	if total != 33 {
		t.Fatalf("pdctl store list counts %d replicas, want 33: %+v", total, stores)
	}

	// Store 5 dies: its replicas are re-created on the others.
	c.Stop(4)
	placed = waitPlaced(t, cli, names, []uint64{5}, time.Minute)
	readAll(4)
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
	waitPlaced(t, cli, names, []uint64{4, 5}, time.Minute)
	if n := c.Store(3).Replicas(); n != 0 {
		t.Fatalf("removed store 4 still holds %d replicas", n)
	}
	readAll(3, 4)
}
