// Strong namespaces that exist on PD before their stores do: PD forms their
// Raft groups once stores arrive, and CAS works on them through every store.

package store_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// formWithin bounds each wait for a group to form and serve.
const formWithin = 30 * time.Second

// formPD starts a one-member PD that waits settle after a store arrives
// before it forms a group, and drives switches as pd-server does.
func formPD(t *testing.T, settle time.Duration) *pdtest.Cluster {
	t.Helper()
	return pdtest.NewCluster(t, 1,
		pdtest.WithDriver(func(int) server.Driver { return switchdriver.New(nil, 50*time.Millisecond) }),
		pdtest.WithFormSettle(settle))
}

// casEventually waits until a CAS on ns through cli succeeds. Each attempt
// writes a fresh key, so an attempt that timed out but committed does not
// make the next one fail.
func casEventually(t *testing.T, cli kvrpc.KvCasClient, ns, who string) {
	t.Helper()
	attempt := 0
	storetest.Eventually(t, formWithin, func() error {
		attempt++
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		key := fmt.Sprintf("%s-%d", strings.ReplaceAll(who, " ", "-"), attempt)
		r, err := cli.CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: ns, Key: key, Value: "v"})
		if err != nil {
			return err
		}
		if !r.GetSuccess() {
			return fmt.Errorf("CAS of a new key did not succeed: %v", r)
		}
		return nil
	}, "CAS on %s through %s", ns, who)
}

// peersOf returns a namespace's group voters as PD has them.
func peersOf(t *testing.T, cli *pdclient.Client, ns string) []uint64 {
	t.Helper()
	st, err := cli.GetNamespace(ctxT(t, 10*time.Second), ns, false)
	if err != nil {
		t.Fatalf("get %s from PD: %v", ns, err)
	}
	return st.GetRecord().GetGroupPeers()
}

// TestPDFormGroupWhenStoresArrive: `pdctl namespace set foo strong` on a PD
// that has no store yet, then three stores start: foo's group is formed from
// them, and CAS on foo works through each.
func TestPDFormGroupWhenStoresArrive(t *testing.T) {
	pd := formPD(t, server.DefaultConfig().FormSettle)
	cli := pd.Client()
	set, err := cli.SetNamespaceMode(ctxT(t, 10*time.Second), &pdpb.SetNamespaceModeRequest{Name: "foo", Mode: "strong"})
	if err != nil {
		t.Fatal(err)
	}
	if rec := set.GetRecord(); rec.GetGroupId() == 0 || len(rec.GetGroupPeers()) != 0 {
		t.Fatalf("foo with no store = %v; want a group id and no voter yet", rec)
	}

	c := storetest.NewCluster(t, 3, storetest.Options{PD: strings.Split(pd.Endpoints(), ",")})
	for i := range 3 {
		casEventually(t, c.Cas(i), "foo", fmt.Sprintf("store %d", i+1))
	}
	// The stores started together: the first of them alone must not be
	// the group's quorum.
	peers := peersOf(t, cli, "foo")
	t.Logf("foo formed with voters %v", peers)
	if len(peers) < 2 {
		t.Fatalf("foo's voters %v are a minority of the three stores that arrived together", peers)
	}
}

// pdStore is one PD-mode store started on its own.
type pdStore struct {
	s   *store.Store
	cas kvrpc.KvCasClient
}

// startPDStore starts store id against PD; it stops when the test ends.
func startPDStore(t *testing.T, pd *pdtest.Cluster, id uint64) *pdStore {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(store.Config{
		StoreID:             id,
		Listener:            lis,
		DataDir:             t.TempDir(),
		PD:                  strings.Split(pd.Endpoints(), ","),
		TickInterval:        50 * time.Millisecond,
		ElectionTicks:       10,
		AntiEntropyInterval: 200 * time.Millisecond,
		OnFatal:             func(err error) { t.Errorf("store %d: persistence failed: %v", id, err) },
	})
	if err != nil {
		_ = lis.Close()
		t.Fatalf("open store %d: %v", id, err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("start store %d: %v", id, err)
	}
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial store %d: %v", id, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &pdStore{s: s, cas: kvrpc.NewKvCasClient(conn)}
}

// waitStoreUp waits until PD counts store id up: the gap before the next
// store starts.
func waitStoreUp(t *testing.T, pd *pdtest.Cluster, id uint64) {
	t.Helper()
	cli := pd.Client()
	storetest.Eventually(t, formWithin, func() error {
		list, err := cli.ListStores(ctxT(t, 5*time.Second))
		if err != nil {
			return err
		}
		for _, s := range list {
			if s.GetId() == id && s.GetUp() {
				return nil
			}
		}
		return fmt.Errorf("stores: %v", list)
	}, "PD counts store %d up", id)
}

// TestPDFormGroupStoresOneByOne is the demo cluster that failed: the default
// namespace is created before any store has registered, then stores start
// one at a time. Its group is formed with the first store, the others become
// voters as they come, and CAS works through every store on default and on
// a strong namespace created later.
func TestPDFormGroupStoresOneByOne(t *testing.T) {
	pd := formPD(t, time.Second)
	cli := pd.Client()
	// What a store's seed loop does, here before any store is up.
	def, err := cli.GetNamespace(ctxT(t, 10*time.Second), "default", true)
	if err != nil {
		t.Fatal(err)
	}
	if rec := def.GetRecord(); rec.GetGroupId() == 0 || len(rec.GetGroupPeers()) != 0 {
		t.Fatalf("default with no store = %v; want a group id and no voter yet", rec)
	}

	stores := []*pdStore{startPDStore(t, pd, 1)}
	casEventually(t, stores[0].cas, "default", "store 1 alone")
	if peers := peersOf(t, cli, "default"); !slices.Equal(peers, []uint64{1}) {
		t.Fatalf("default formed with %v, want [1]", peers)
	}
	waitStoreUp(t, pd, 1)
	for id := uint64(2); id <= 3; id++ {
		stores = append(stores, startPDStore(t, pd, id))
		waitStoreUp(t, pd, id)
	}

	// A strong namespace created now waits for the last arrival to settle,
	// then gets every store as a voter.
	if _, err := cli.SetNamespaceMode(ctxT(t, 10*time.Second), &pdpb.SetNamespaceModeRequest{Name: "orders", Mode: "strong"}); err != nil {
		t.Fatal(err)
	}
	for i, st := range stores {
		casEventually(t, st.cas, "default", fmt.Sprintf("store %d", i+1))
		casEventually(t, st.cas, "orders", fmt.Sprintf("store %d", i+1))
	}
	if peers := peersOf(t, cli, "orders"); !slices.Equal(slices.Sorted(slices.Values(peers)), []uint64{1, 2, 3}) {
		t.Fatalf("orders formed with %v, want [1 2 3]", peers)
	}
	// Stores that came after default's group was formed become its voters.
	for i, st := range stores {
		storetest.Eventually(t, formWithin, func() error {
			gs, ok := st.s.GroupStatus("default")
			if !ok || len(gs.Voters) != 3 {
				return fmt.Errorf("voters %v (group known: %v)", gs.Voters, ok)
			}
			return nil
		}, "default's group has three voters on store %d", i+1)
	}
}
