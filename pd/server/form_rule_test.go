// Unit tests of the group formation rule (storeTracker.formationPeers) on a
// made-up clock: which stores become voters, and when.

package server

import (
	"slices"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

func info(id uint64) *storepb.StoreInfo { return &storepb.StoreInfo{Id: id, Addr: "127.0.0.1:1"} }

func TestFormationRule(t *testing.T) {
	const downAfter, settle = 5 * time.Second, 2 * time.Second
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tr := newStoreTracker(downAfter, time.Hour)
	check := func(when time.Duration, want ...uint64) {
		t.Helper()
		peers, ok := tr.formationPeers(at(when), settle)
		if ok != (len(want) > 0) || !slices.Equal(peers, want) {
			t.Fatalf("at t0+%v: formationPeers = %v, %v; want %v", when, peers, ok, want)
		}
	}

	// A new leader loads stores 1 and 2 from etcd: it shows them up for a
	// while, but neither has heartbeat it, so neither may become a voter.
	tr.reset([]*storepb.StoreInfo{info(1), info(2)}, t0)
	if up := tr.statuses(at(3 * time.Second)); !up[0].GetUp() || !up[1].GetUp() {
		t.Fatalf("loaded stores should show up during their grace: %v", up)
	}
	check(3 * time.Second) // settled, but no store heartbeats: nothing

	// Becoming leader counts as an arrival: a store heartbeating right away
	// waits for the settle from the start of the term.
	tr.reset([]*storepb.StoreInfo{info(1), info(2)}, t0)
	tr.heartbeat(&pdpb.StoreHeartbeatRequest{StoreId: 1}, at(100*time.Millisecond))
	check(settle - time.Nanosecond)
	check(settle, 1)

	// A new store restarts the settle; stores that heartbeat are voters.
	tr.register(info(3), at(3*time.Second))
	tr.heartbeat(&pdpb.StoreHeartbeatRequest{StoreId: 1}, at(4*time.Second))
	check(3*time.Second + settle - time.Nanosecond)
	check(3*time.Second+settle, 1, 3)
	select {
	case <-tr.arrivals():
	default:
		t.Fatal("a new store's registration did not signal an arrival")
	}

	// A known store registering again is no arrival.
	tr.register(info(3), at(6*time.Second))
	check(6*time.Second, 1, 3)
	select {
	case <-tr.arrivals():
		t.Fatal("a known store's registration signalled an arrival")
	default:
	}

	// A store that stops heartbeating is down: no longer a voter to be. With
	// every store down, nothing is formed.
	check(4*time.Second+downAfter, 3)
	check(6*time.Second + downAfter)
	tr.heartbeat(&pdpb.StoreHeartbeatRequest{StoreId: 2}, at(20*time.Second))
	check(20*time.Second, 2)

	// No store at all: nothing, however long PD waits.
	empty := newStoreTracker(downAfter, time.Hour)
	empty.reset(nil, t0)
	if peers, ok := empty.formationPeers(at(time.Hour), settle); ok || len(peers) != 0 {
		t.Fatalf("no store: formationPeers = %v, %v", peers, ok)
	}
	// With no settle, the first store to register may form groups at once.
	empty.register(info(7), at(time.Hour))
	if peers, ok := empty.formationPeers(at(time.Hour), 0); !ok || !slices.Equal(peers, []uint64{7}) {
		t.Fatalf("settle 0: formationPeers = %v, %v; want [7]", peers, ok)
	}
}

func TestPendingGroup(t *testing.T) {
	for _, tc := range []struct {
		rec  *storepb.NamespaceRecord
		want bool
	}{
		{nil, false},
		{&storepb.NamespaceRecord{Mode: ModeStrong, GroupId: 2}, true},
		{&storepb.NamespaceRecord{Mode: ModeStrong, GroupId: 2, GroupPeers: []uint64{1}}, false},
		{&storepb.NamespaceRecord{Mode: ModeStrong}, false},
		// An eventual namespace's group is formed if it becomes strong again.
		{&storepb.NamespaceRecord{Mode: ModeEventual, GroupId: 2}, false},
	} {
		if got := pendingGroup(tc.rec); got != tc.want {
			t.Errorf("pendingGroup(%v) = %v, want %v", tc.rec, got, tc.want)
		}
	}
}
