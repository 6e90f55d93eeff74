// Tests of group formation on a real PD: a strong namespace created before
// any store is up gets its voters from the stores that arrive, never from a
// store that is down, and the formation is logged once.

package server_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/proto/storepb"
)

func TestGroupFormedWhenStoresArrive(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	withLog := func(_ int, cfg *server.Config) { cfg.Logger = zap.New(core) }
	// A store that registers and goes silent is down before the settle
	// ends: it must not become a voter.
	c := pdtest.NewCluster(t, 1, pdtest.WithFormSettle(time.Second),
		pdtest.WithStoreDownAfter(500*time.Millisecond), withLog)
	cli := c.Client()
	ctx := testContext(t)

	foo := set(t, cli, "foo", "strong").GetRecord()
	def, err := cli.GetNamespace(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*storepb.NamespaceRecord{foo, def.GetRecord()} {
		if rec.GetGroupId() == 0 || len(rec.GetGroupPeers()) != 0 {
			t.Fatalf("with no store, %s = %v; want a group id and no voter yet", rec.GetName(), rec)
		}
	}

	if _, err := cli.RegisterStore(ctx, &storepb.StoreInfo{Id: 9, Addr: "127.0.0.1:7009"}); err != nil {
		t.Fatal(err)
	}
	pdtest.Eventually(t, 10*time.Second, func() error {
		list, err := cli.ListStores(ctx)
		if err != nil {
			return err
		}
		if s := storeByID(list, 9); s.GetUp() {
			return fmt.Errorf("store 9 still up: %v", s)
		}
		return nil
	})
	// Store 9 was down before its arrival settled: no group could form.
	if rec := get(t, cli, "foo").GetRecord(); len(rec.GetGroupPeers()) != 0 {
		t.Fatalf("formed with no store up: %v", rec)
	}

	s1 := pdtest.StartFakeStore(t, c.Endpoints(), 1)
	s2 := pdtest.StartFakeStore(t, c.Endpoints(), 2)
	// Both arrived within the settle: both are voters, store 9 is not.
	for _, ns := range []string{"foo", "default"} {
		pdtest.Eventually(t, 10*time.Second, func() error {
			rec := get(t, cli, ns).GetRecord()
			if len(rec.GetGroupPeers()) == 0 {
				return fmt.Errorf("%s not formed yet: %v", ns, rec)
			}
			if !equalIDs(rec.GetGroupPeers(), 1, 2) {
				t.Fatalf("%s formed with %v, want [1 2]", ns, rec.GetGroupPeers())
			}
			return nil
		})
	}
	after := get(t, cli, "foo").GetRecord()
	if after.GetGroupId() != foo.GetGroupId() || after.GetEpoch() != foo.GetEpoch() || after.GetVersion() <= foo.GetVersion() {
		t.Fatalf("formation changed more than the voters: %v, was %v", after, foo)
	}
	// The stores see a new version of the row, with the voters.
	for _, s := range []*pdtest.FakeStore{s1, s2} {
		pdtest.Eventually(t, 10*time.Second, func() error {
			if rec, ok := s.Record("foo"); !ok || rec.GetVersion() != after.GetVersion() || !equalIDs(rec.GetGroupPeers(), 1, 2) {
				return fmt.Errorf("store %d has foo = %v", s.ID, rec)
			}
			return nil
		})
	}

	// Once formed, a namespace created while stores are up and settled is
	// formed at once, with the stores that are up.
	bar := set(t, cli, "bar", "strong").GetRecord()
	if !equalIDs(bar.GetGroupPeers(), 1, 2) {
		t.Fatalf("bar = %v, want voters [1 2] at once", bar)
	}

	// One log line per formed namespace, with its voters.
	formed := map[string]int{}
	for _, e := range logs.FilterMessage("namespace group formed").All() {
		ctx := e.ContextMap()
		ns, _ := ctx["namespace"].(string)
		formed[ns]++
		if peers, ok := ctx["peers"].([]any); !ok || len(peers) != 2 {
			t.Errorf("formed log of %s: peers %v", ns, ctx["peers"])
		}
	}
	for _, ns := range []string{"foo", "default", "bar"} {
		if formed[ns] != 1 {
			t.Errorf("%s: %d formation logs, want 1 (all: %v)", ns, formed[ns], formed)
		}
	}
	if len(formed) != 3 {
		t.Errorf("formation logs for %v, want foo, default and bar", slices.Sorted(maps.Keys(formed)))
	}
}

// TestUnformedGroupDroppedBySwitch: a strong namespace whose group never
// formed (no store was up) that switches to eventual has no group to fence:
// its row drops the group id, so nothing waits for a group no store will
// ever hold, and a later switch back to strong takes a new group.
func TestUnformedGroupDroppedBySwitch(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	rec := set(t, cli, "logs", "strong").GetRecord()
	if rec.GetGroupId() == 0 || len(rec.GetGroupPeers()) != 0 {
		t.Fatalf("with no store, logs = %v; want a group id and no voter yet", rec)
	}
	ev := set(t, cli, "logs", "eventual").GetRecord()
	if ev.GetGroupId() != 0 || ev.GetEpoch() != 2 {
		t.Fatalf("switched before its group formed: %v; want epoch 2 and no group", ev)
	}
	back := set(t, cli, "logs", "strong").GetRecord()
	if back.GetGroupId() == 0 || back.GetGroupId() == rec.GetGroupId() || back.GetEpoch() != 3 {
		t.Fatalf("back to strong: %v; want epoch 3 and a new group (not %d)", back, rec.GetGroupId())
	}
}
