package store_test

// A cluster's identity: stores never take traffic from a store of another
// cluster, never follow a PD of another cluster nor one that went back,
// and a data dir runs only in the mode that created it.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/clusterid"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/security"
	"github.com/rdb-project/rdb/store/storetest"
)

// TestStoresOfAnotherClusterAreRefused: store 3 of static cluster A goes
// away and a store of cluster B takes its address. A's stores keep sending
// it their Raft traffic and their eventual writes, and B's store refuses
// every call: nothing written in A enters B. A peer that names A, or no
// cluster, is refused with FailedPrecondition naming both clusters; one
// that names B is served.
func TestStoresOfAnotherClusterAreRefused(t *testing.T) {
	modes := map[string]string{"logs": "eventual"}
	a := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: modes})
	idA := a.ClusterID()
	for i := range 3 {
		if got := a.Store(i).ClusterID(); got == 0 || got != idA {
			t.Fatalf("store %d of A belongs to cluster %d, store 1 to %d", i+1, got, idA)
		}
	}
	moved := a.Addr(2)
	a.Stop(2)
	b := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: modes, Configure: func(i int, cfg *store.Config) {
		if i == 2 {
			cfg.Addr = moved // B's store 3 where A's store 3 was
		}
	}})
	idB := b.ClusterID()
	if idB == 0 || idB == idA {
		t.Fatalf("cluster B's id %d, A's %d: want two distinct ids", idB, idA)
	}

	// A writes, both modes; its stores 1 and 2 push to "store 3".
	ctx := ctxT(t, time.Minute)
	if _, err := a.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "from-a", Value: "a"}); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "from-a", Value: "a"}); err != nil || !r.GetSuccess() {
		t.Fatalf("CAS in A = %v, %v", r, err)
	}
	// Anti-entropy runs every 200ms: give A a few rounds to push.
	time.Sleep(2 * time.Second)
	for i := range 3 {
		for _, ns := range []string{"logs", "default"} {
			got, err := b.Raw(i).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: ns, Key: "from-a"})
			if err == nil && got.GetFound() {
				t.Fatalf("A's write %s/from-a entered store %d of B: %v", ns, i+1, got)
			}
			if err != nil && status.Code(err) != codes.NotFound {
				t.Fatalf("RawGet %s on store %d of B: %v", ns, i+1, err)
			}
		}
	}

	// The calls A's stores make, named as they name them.
	asA := storepb.NewStoreInternalClient(storetest.DialPeer(t, moved, security.Files{}, idA))
	refused := func(what string, err error, named uint64) {
		t.Helper()
		if status.Code(err) != codes.FailedPrecondition || !clusterid.IsMismatch(err) {
			t.Fatalf("%s: %v, want FailedPrecondition %s", what, err, clusterid.ReasonMismatch)
		}
		msg := status.Convert(err).Message()
		if !strings.Contains(msg, "belongs to cluster "+clusterid.String(idB)) ||
			(named != 0 && !strings.Contains(msg, "the caller to cluster "+clusterid.String(named))) {
			t.Fatalf("%s: the refusal does not name both clusters: %s", what, msg)
		}
	}
	_, err := asA.SwitchStatus(ctx, &storepb.SwitchStatusRequest{Namespace: "logs"})
	refused("SwitchStatus naming A", err, idA)

	hb, err := proto.Marshal(&eraftpb.Message{Type: eraftpb.MsgHeartbeat.Enum(), From: new(uint64(1)), To: new(uint64(3)), Term: new(uint64(1 << 20))})
	if err != nil {
		t.Fatal(err)
	}
	raft, err := asA.Raft(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = raft.Send(&storepb.RaftBatch{FromStore: 1, ToStore: 3, Messages: []*storepb.RaftMessage{{GroupId: keys.MetaGroupID, Data: hb}}})
	_, err = raft.CloseAndRecv()
	refused("a Raft batch naming A", err, idA)

	rep, err := asA.Replicate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = rep.Send(&storepb.ReplicateBatch{FromStore: 1})
	_, err = rep.CloseAndRecv()
	refused("a replicate stream naming A", err, idA)

	anon := storepb.NewStoreInternalClient(storetest.Dial(t, moved, security.Files{}))
	_, err = anon.SwitchStatus(ctx, &storepb.SwitchStatusRequest{Namespace: "logs"})
	refused("SwitchStatus naming no cluster", err, 0)

	asB := storepb.NewStoreInternalClient(storetest.DialPeer(t, moved, security.Files{}, idB))
	if _, err := asB.SwitchStatus(ctx, &storepb.SwitchStatusRequest{Namespace: "logs"}); err != nil {
		t.Fatalf("SwitchStatus naming B: %v", err)
	}
	// B's meta group was not disturbed: its store 3 still serves strong
	// writes (they go through the group's leader).
	if r, err := b.Cas(2).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "from-b", Value: "b"}); err != nil || !r.GetSuccess() {
		t.Fatalf("CAS in B = %v, %v", r, err)
	}
}

// observed returns a logger that records Error logs.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.ErrorLevel)
	return zap.New(core), logs
}

// waitLog waits until an Error log whose message contains msg was written,
// and returns it.
func waitLog(t *testing.T, logs *observer.ObservedLogs, msg string) observer.LoggedEntry {
	t.Helper()
	var entry observer.LoggedEntry
	storetest.Eventually(t, 15*time.Second, func() error {
		found := logs.FilterMessageSnippet(msg).All()
		if len(found) == 0 {
			return errors.New("not logged yet")
		}
		entry = found[0]
		return nil
	}, "an Error log %q", msg)
	return entry
}

// waitLogError waits until an Error log whose message contains msg and
// whose error contains reason was written.
func waitLogError(t *testing.T, logs *observer.ObservedLogs, msg, reason string) {
	t.Helper()
	storetest.Eventually(t, 20*time.Second, func() error {
		for _, e := range logs.FilterMessageSnippet(msg).All() {
			if err, _ := e.ContextMap()["error"].(string); strings.Contains(err, reason) {
				return nil
			}
		}
		return errors.New("not logged yet")
	}, "an Error log %q for %q", msg, reason)
}

// setNamespaces creates n eventual namespaces prefix0.. in PD and returns
// the last one's version.
func setNamespaces(t *testing.T, cli *pdclient.Client, prefix string, n int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		resp, err := cli.SetNamespaceMode(ctxT(t, 10*time.Second), &pdpb.SetNamespaceModeRequest{Name: fmt.Sprintf("%s%d", prefix, i), Mode: "eventual"})
		if err != nil {
			t.Fatal(err)
		}
		last = resp.GetRecord().GetVersion()
	}
	return last
}

// TestStoreRefusesPDOfAnotherCluster: a store that registered with PD A
// and is restarted against a fresh PD B (another cluster) does not follow
// it: it logs an Error naming both clusters and B's endpoints, never
// applies B's table, never registers with B, and keeps serving its own
// table; B refuses the store's calls.
func TestStoreRefusesPDOfAnotherCluster(t *testing.T) {
	pdA := pdtest.NewCluster(t, 1)
	logger, logs := observed()
	c := storetest.NewCluster(t, 1, storetest.Options{
		PD: strings.Split(pdA.Endpoints(), ","), NamespaceModes: map[string]string{"logs": "eventual"}, Logger: logger,
	})
	idA := c.ClusterID()
	if idA == 0 || idA != pdA.Server(0).ClusterID() {
		t.Fatalf("the store's cluster is %d, PD A's %d", idA, pdA.Server(0).ClusterID())
	}
	c.Stop(0)

	// PD B's revision goes far past what the store applied from A, so that
	// a store that followed B would get B's rows from its watch.
	pdB := pdtest.NewCluster(t, 1)
	idB := pdB.Server(0).ClusterID()
	cliB := pdB.Client()
	setNamespaces(t, cliB, "fill", 30)
	if _, err := cliB.SetNamespaceMode(ctxT(t, 10*time.Second), &pdpb.SetNamespaceModeRequest{Name: "onlyb", Mode: "eventual"}); err != nil {
		t.Fatal(err)
	}
	c.Reconfigure(0, func(cfg *store.Config) { cfg.PD = strings.Split(pdB.Endpoints(), ",") })
	c.Start(0)

	e := waitLog(t, logs, "PD belongs to another cluster")
	fields := e.ContextMap()
	if fields["store_cluster_id"] != clusterid.String(idA) || fields["pd_cluster_id"] != clusterid.String(idB) ||
		!strings.Contains(fmt.Sprint(fields["pd"]), pdB.Endpoint(0)) {
		t.Fatalf("the refusal's log says %v; want store %d, PD %d at %s", fields, idA, idB, pdB.Endpoint(0))
	}
	// Give the follower time it would need to apply B's table, then check
	// it did not.
	time.Sleep(2 * time.Second)
	s := c.Store(0)
	if row, ok := s.NamespaceRow("onlyb"); ok {
		t.Fatalf("the store applied PD B's row %v", row)
	}
	if s.ClusterID() != idA {
		t.Fatalf("the store's cluster became %d", s.ClusterID())
	}
	stores, err := cliB.ListStores(ctxT(t, 10*time.Second))
	if err != nil || len(stores) != 0 {
		t.Fatalf("PD B lists stores %v (%v): the store registered with it", stores, err)
	}
	// The store serves with the table it has, except raw writes: it was
	// restarted, and only its own PD could tell it whether its namespaces
	// moved or switched while it was away.
	ctx := ctxT(t, 10*time.Second)
	if _, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "k", Value: "v"}); status.Code(err) != codes.Unavailable || api.Reason(err) != api.ReasonNotApplied {
		t.Fatalf("RawPut on a restarted store that follows no PD: %v, want Unavailable, not applied", err)
	}
	if m, err := c.Modes(0).GetMode(ctx, &raftpb.GetModeRequest{Namespace: "logs"}); err != nil || m.GetMode() != "eventual" {
		t.Fatalf("GetMode logs = %v, %v", m, err)
	}
	// A namespace only PD could create is refused, with the reason.
	if _, err := c.Modes(0).GetMode(ctx, &raftpb.GetModeRequest{Namespace: "brand-new"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("GetMode of a new namespace = %v, want FailedPrecondition", err)
	}

	// B refuses what the store would ask, named as it names it.
	asStore := pdB.Client(pdclient.WithClusterID(func() uint64 { return idA }))
	if _, err := asStore.Register(ctx, &storepb.StoreInfo{Id: 1, Addr: c.Addr(0)}); !clusterid.IsMismatch(err) {
		t.Fatalf("PD B answered the store's registration: %v", err)
	}
	if err := asStore.WatchNamespaces(ctx, 0, func(*pdpb.WatchNamespacesResponse) error { return nil }); !clusterid.IsMismatch(err) {
		t.Fatalf("PD B answered the store's watch: %v", err)
	}
}

// TestStoreRefusesPDThatWentBack: a store applied PD's table up to some
// revision R; it is restarted against a PD of the same cluster whose
// revision is below R (its etcd wiped and the cluster id put back, as a
// restore from an old backup would leave it). The store registers, but
// does not follow the table: it logs an Error and never applies the PD's
// rows, even after the PD's revision has gone past R.
func TestStoreRefusesPDThatWentBack(t *testing.T) {
	pdA := pdtest.NewCluster(t, 1)
	logger, logs := observed()
	c := storetest.NewCluster(t, 1, storetest.Options{PD: strings.Split(pdA.Endpoints(), ","), Logger: logger})
	id := c.ClusterID()
	last := setNamespaces(t, pdA.Client(), "ns", 30)
	storetest.Eventually(t, 10*time.Second, func() error {
		if row, ok := c.Store(0).NamespaceRow("ns29"); !ok || row.GetVersion() < last {
			return fmt.Errorf("the store has %v", row)
		}
		return nil
	}, "the store applies revision %d", last)
	c.Stop(0)

	// A new PD with the old cluster's id: its revision is far below.
	pdB := pdtest.NewCluster(t, 1)
	if _, err := pdB.EtcdClient().Put(ctxT(t, 10*time.Second), server.ClusterIDKey(), clusterid.String(id)); err != nil {
		t.Fatal(err)
	}
	pdB.Stop(0)
	pdB.Restart(0)
	pdB.WaitLeader()
	if got := pdB.Server(0).ClusterID(); got != id {
		t.Fatalf("PD B's cluster id is %d, want the preset %d", got, id)
	}
	cliB := pdB.Client()
	onlyB, err := cliB.SetNamespaceMode(ctxT(t, 10*time.Second), &pdpb.SetNamespaceModeRequest{Name: "onlyb", Mode: "eventual"})
	if err != nil {
		t.Fatal(err)
	}
	if onlyB.GetRecord().GetVersion() >= last {
		t.Fatalf("PD B is at revision %d, not below the store's %d", onlyB.GetRecord().GetVersion(), last)
	}

	c.Reconfigure(0, func(cfg *store.Config) { cfg.PD = strings.Split(pdB.Endpoints(), ",") })
	c.Start(0)
	waitLogError(t, logs, "does not continue", "wiped or restored from an older backup")
	// Same cluster: the store registers and heartbeats...
	storetest.Eventually(t, 10*time.Second, func() error {
		stores, err := cliB.ListStores(ctxT(t, 5*time.Second))
		if err != nil || len(stores) != 1 || !stores[0].GetUp() {
			return fmt.Errorf("PD B lists %v (%v)", stores, err)
		}
		return nil
	}, "the store registers with PD B")
	// ...but applies nothing of the table, not even once PD's revision has
	// passed the store's (a watch from there would get the new rows; the
	// store asks for the whole table instead, which disagrees with what it
	// applied).
	setNamespaces(t, cliB, "late", 40)
	waitLogError(t, logs, "does not continue", "not the one this store followed")
	for _, ns := range []string{"onlyb", "late39"} {
		if row, ok := c.Store(0).NamespaceRow(ns); ok {
			t.Fatalf("the store applied %v from a PD that went back", row)
		}
	}
	if row, ok := c.Store(0).NamespaceRow("ns29"); !ok || row.GetVersion() != last {
		t.Fatalf("the store's row ns29 is %v, want version %d", row, last)
	}
}

// TestDataDirModeIsChecked: a data dir created by a static-mode store does
// not open with --pd, and one created by a PD-mode store does not open
// without; the error says what to do. A data dir from before the mode was
// recorded tells it by what it holds.
func TestDataDirModeIsChecked(t *testing.T) {
	pdEndpoints := []string{"127.0.0.1:1"} // never reached: Open does not call PD
	for _, tc := range []struct {
		name        string
		created     []string
		reopened    []string
		wantMessage string
	}{
		{"static then --pd", nil, pdEndpoints, "was created by a static-mode store (no --pd): it cannot follow a placement driver; use another --data-dir"},
		{"--pd then static", pdEndpoints, nil, "was created by a store that followed a placement driver (--pd): it cannot run in static mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := store.Config{StoreID: 1, Addr: "127.0.0.1:0", DataDir: dir, PD: tc.created}
			s, err := store.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var id uint64
			if len(tc.created) == 0 {
				// A static store that bootstrapped: it holds the meta group.
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
				if id = s.ClusterID(); id == 0 {
					t.Fatal("the bootstrapped store has no cluster id")
				}
			}
			s.Stop()

			var reopenedID uint64
			open := func(pd []string) error {
				cfg.PD = pd
				s, err := store.Open(cfg)
				if err == nil {
					reopenedID = s.ClusterID()
					s.Stop()
				}
				return err
			}
			err = open(tc.reopened)
			if err == nil || !strings.Contains(err.Error(), tc.wantMessage) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("reopened in the other mode: %v; want %q naming %s", err, tc.wantMessage, dir)
			}
			if err := open(tc.created); err != nil {
				t.Fatalf("reopened in its own mode: %v", err)
			}
			if reopenedID != id {
				t.Fatalf("reopened, the store belongs to cluster %d, before to %d", reopenedID, id)
			}

			if len(tc.created) == 0 {
				// Without m/mode (a data dir from before it existed), the
				// meta group tells the mode.
				db, err := pebble.Open(dir, &pebble.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Delete(keys.Mode(), pebble.Sync); err != nil {
					t.Fatal(err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				if err := open(tc.reopened); err == nil || !strings.Contains(err.Error(), tc.wantMessage) {
					t.Fatalf("reopened in the other mode without m/mode: %v", err)
				}
			}
		})
	}
}
