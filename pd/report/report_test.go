package report

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/testseed"
)

// TestReceiverFollowsSender: whatever heartbeats are lost, answered
// without the answer arriving, delayed past later ones, or refused by a PD
// that lost the session (a new leader), PD's copy equals the store's report
// as of the last heartbeat it acknowledged, and a delta is sent only while
// PD holds the session.
func TestReceiverFollowsSender(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.For(t, 7), 0))
	s := NewSender()
	r := &Receiver{}
	full := randomReport(rng, nil)
	var delayed []*pdpb.StoreHeartbeatRequest
	var ackedFull *pdpb.StoreHeartbeatRequest
	fulls := 0
	var built *pdpb.StoreHeartbeatRequest // the report at the last Build
	for step := range 20000 {
		full = randomReport(rng, full)
		req := &pdpb.StoreHeartbeatRequest{StoreId: 1, AppliedRevision: uint64(step)}
		s.Build(req, fillChanges(rng, built, full))
		built = full
		if req.GetFullReport() {
			fulls++
		}
		switch k := rng.IntN(20); {
		case k == 0: // lost on the way
			s.Acknowledge(false)
		case k == 1: // applied, answer lost
			r.Apply(req)
			s.Acknowledge(false)
		case k == 2: // delayed: arrives after later ones
			delayed = append(delayed, req)
			s.Acknowledge(false)
		case k == 3: // a new PD leader: no report at all
			r = &Receiver{}
			s.Acknowledge(r.Apply(req))
		case k == 4: // a new PD leader, and this heartbeat lost in the change
			r = &Receiver{}
			s.Acknowledge(false)
		case k == 5: // a new PD leader gets a delayed heartbeat first
			r = &Receiver{}
			if len(delayed) > 0 {
				r.Apply(delayed[len(delayed)-1])
				delayed = delayed[:len(delayed)-1]
			}
			s.Acknowledge(r.Apply(req))
		default:
			s.Acknowledge(r.Apply(req))
		}
		if len(delayed) > 0 && rng.IntN(4) == 0 {
			// Its answer goes nowhere; PD may hold an older report
			// until the next heartbeat, as if that were late.
			r.Apply(delayed[0])
			delayed = delayed[1:]
			continue
		}
		if !s.full {
			ackedFull = full
			if want := indexOf(full); !sameIndex(r.Index, want) {
				t.Fatalf("step %d: PD holds %s, the store's acknowledged report is %s", step, dump(r.Index), dump(want))
			}
			if r.AppliedRevision != uint64(step) {
				t.Fatalf("step %d: PD's applied revision is %d", step, r.AppliedRevision)
			}
		}
	}
	if ackedFull == nil || fulls > 20000/2 {
		t.Fatalf("%d of 20000 reports were full", fulls)
	}
}

// TestDeltaHoldsOnlyChanges: a report that changed in one group and lost
// one namespace sends one group and one gone namespace.
func TestDeltaHoldsOnlyChanges(t *testing.T) {
	full := &pdpb.StoreHeartbeatRequest{}
	for i := range 1000 {
		full.Namespaces = append(full.Namespaces, &pdpb.NamespaceApplied{Namespace: fmt.Sprintf("ns%d", i), Version: 3, State: "active"})
		full.Groups = append(full.Groups, &pdpb.GroupStatus{GroupId: uint64(i + 1), Namespace: fmt.Sprintf("ns%d", i), Leader: 1, Term: 2, Voters: []uint64{1, 2, 3}})
	}
	s, r := NewSender(), &Receiver{}
	req := &pdpb.StoreHeartbeatRequest{}
	s.Build(req, fillFrom(full))
	s.Acknowledge(r.Apply(req))
	if !req.GetFullReport() || len(req.GetNamespaces()) != 1000 {
		t.Fatalf("the first report is not full: %d namespaces", len(req.GetNamespaces()))
	}
	next := proto.Clone(full).(*pdpb.StoreHeartbeatRequest)
	next.Groups[7].Commit = 9
	next.Namespaces = next.Namespaces[1:]
	req = &pdpb.StoreHeartbeatRequest{}
	rng := rand.New(rand.NewPCG(testseed.For(t, 5), 0))
	s.Build(req, fillChanges(rng, full, next))
	s.Acknowledge(r.Apply(req))
	if req.GetFullReport() || len(req.GetGroups()) != 1 || len(req.GetNamespaces()) != 0 ||
		len(req.GetGoneNamespaces()) != 1 || req.GetGoneNamespaces()[0] != "ns0" || len(req.GetGoneGroups()) != 0 {
		t.Fatalf("delta: full=%v groups=%d namespaces=%d gone=%v/%v", req.GetFullReport(), len(req.GetGroups()),
			len(req.GetNamespaces()), req.GetGoneNamespaces(), req.GetGoneGroups())
	}
	if r.Groups[8].GetCommit() != 9 || r.Namespaces["ns0"] != nil || len(r.Namespaces) != 999 {
		t.Fatalf("PD did not apply the delta")
	}
	// A change the store failed to note reaches PD by the next sweep.
	missed := proto.Clone(next).(*pdpb.StoreHeartbeatRequest)
	missed.Groups[9].Leader = 3
	notingNothing := func(b *Builder) {
		if b.All() {
			fillFrom(missed)(b)
		}
	}
	req = &pdpb.StoreHeartbeatRequest{}
	s.Build(req, notingNothing)
	s.Acknowledge(r.Apply(req))
	if r.Groups[10].GetLeader() == 3 {
		t.Fatalf("a heartbeat that was not a sweep reported a change the store did not note")
	}
	interval := SweepInterval
	SweepInterval = 0
	defer func() { SweepInterval = interval }()
	for range SweepEvery - 1 {
		req = &pdpb.StoreHeartbeatRequest{}
		s.Build(req, notingNothing)
		s.Acknowledge(r.Apply(req))
	}
	if r.Groups[10].GetLeader() != 3 {
		t.Fatalf("no sweep in %d heartbeats reported the change", SweepEvery)
	}
	next = missed
	// A receiver that never saw the session refuses a delta and keeps
	// nothing of it.
	other := &Receiver{}
	req = &pdpb.StoreHeartbeatRequest{}
	s.Build(req, fillChanges(rng, next, next))
	if other.Apply(req) || other.Namespaces != nil {
		t.Fatalf("a delta of an unknown session was applied")
	}
	s.Acknowledge(false)
	req = &pdpb.StoreHeartbeatRequest{}
	s.Build(req, fillFrom(next))
	if !req.GetFullReport() || !other.Apply(req) || len(other.Namespaces) != 999 {
		t.Fatalf("after a refusal the next report is not full")
	}
}

// randomReport changes a few entries of prev (or makes a first report).
func randomReport(rng *rand.Rand, prev *pdpb.StoreHeartbeatRequest) *pdpb.StoreHeartbeatRequest {
	nss := map[string]*pdpb.NamespaceApplied{}
	groups := map[uint64]*pdpb.GroupStatus{}
	if prev != nil {
		for _, n := range prev.GetNamespaces() {
			nss[n.GetNamespace()] = n
		}
		for _, g := range prev.GetGroups() {
			groups[g.GetGroupId()] = g
		}
	}
	for range rng.IntN(4) {
		name := fmt.Sprintf("ns%d", rng.IntN(40))
		if rng.IntN(3) == 0 {
			delete(nss, name)
		} else {
			nss[name] = &pdpb.NamespaceApplied{Namespace: name, Version: rng.Uint64N(5), State: []string{"active", "switching"}[rng.IntN(2)], Filled: rng.IntN(2) == 0}
		}
		id := rng.Uint64N(40) + 1
		if rng.IntN(3) == 0 {
			delete(groups, id)
		} else {
			groups[id] = &pdpb.GroupStatus{GroupId: id, Leader: rng.Uint64N(3), Commit: rng.Uint64N(5), Voters: []uint64{1, rng.Uint64N(3) + 2},
				State: &storepb.GroupState{ActiveEpoch: rng.Uint64N(3), MaxLoadedTs: &storepb.Timestamp{WallTime: rng.Int64N(3)}}}
		}
	}
	out := &pdpb.StoreHeartbeatRequest{}
	for _, n := range nss {
		out.Namespaces = append(out.Namespaces, n)
	}
	for _, g := range groups {
		out.Groups = append(out.Groups, g)
	}
	return out
}

func sameIndex(a, b Index) bool {
	return maps.EqualFunc(a.Namespaces, b.Namespaces, func(x, y *pdpb.NamespaceApplied) bool { return proto.Equal(x, y) }) &&
		maps.EqualFunc(a.Groups, b.Groups, func(x, y *pdpb.GroupStatus) bool { return proto.Equal(x, y) })
}

func dump(x Index) string {
	return fmt.Sprintf("%d namespaces, %d groups", len(x.Namespaces), len(x.Groups))
}

// TestSameAgreesWithProtoEqual: comparing entries sees every field (a
// field added to the messages and not to the entries fails here).
func TestSameAgreesWithProtoEqual(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.For(t, 11), 0))
	for range 5000 {
		a, b := randomReport(rng, nil), randomReport(rng, nil)
		for _, x := range a.GetGroups() {
			for _, y := range b.GetGroups() {
				if x.GetGroupId() != y.GetGroupId() {
					continue
				}
				ex, ey := groupEntry(x), groupEntry(y)
				if sameGroupEntry(&ex, &ey) != proto.Equal(x, y) {
					t.Fatalf("sameGroupEntry(%v, %v) = %v", x, y, sameGroupEntry(&ex, &ey))
				}
			}
		}
		for _, x := range a.GetNamespaces() {
			for _, y := range b.GetNamespaces() {
				if x.GetNamespace() == y.GetNamespace() && (namespaceEntry(x) == namespaceEntry(y)) != proto.Equal(x, y) {
					t.Fatalf("entries of %v and %v compare wrong", x, y)
				}
			}
		}
	}
	for msg, n := range map[proto.Message]int{&pdpb.GroupStatus{}: 9, &pdpb.NamespaceApplied{}: 5, &storepb.GroupState{}: 8, &storepb.Timestamp{}: 3} {
		if got := msg.ProtoReflect().Descriptor().Fields().Len(); got != n {
			t.Errorf("%T has %d fields; the entries and comparisons in report.go know %d: update them", msg, got, n)
		}
	}
}

func namespaceEntry(n *pdpb.NamespaceApplied) NamespaceEntry {
	return NamespaceEntry{Version: n.GetVersion(), State: n.GetState(), Filled: n.GetFilled(), Releasing: n.GetReleasing()}
}

func groupEntry(g *pdpb.GroupStatus) GroupEntry {
	return GroupEntry{Namespace: g.GetNamespace(), Leader: g.GetLeader(), Term: g.GetTerm(), Commit: g.GetCommit(),
		Applied: g.GetApplied(), State: g.GetState(), Voters: g.GetVoters(), Learners: g.GetLearners()}
}

// fillFrom reports the entries of a whole report.
func fillFrom(full *pdpb.StoreHeartbeatRequest) func(*Builder) {
	return func(b *Builder) {
		for _, n := range full.GetNamespaces() {
			b.Namespace(n.GetNamespace(), namespaceEntry(n))
		}
		for _, g := range full.GetGroups() {
			b.Group(g.GetGroupId(), groupEntry(g))
		}
	}
}

// fillChanges reports what a store that notes its changes would: every
// entry if the Builder asks for all, else the entries that differ between
// the report at the last Build and cur (and a few that do not: a store
// may note a change that changed back).
func fillChanges(rng *rand.Rand, last, cur *pdpb.StoreHeartbeatRequest) func(*Builder) {
	return func(b *Builder) {
		if b.All() || last == nil {
			fillFrom(cur)(b)
			return
		}
		was, is := indexOf(last), indexOf(cur)
		for name := range mapsUnion(was.Namespaces, is.Namespaces) {
			if n, ok := is.Namespaces[name]; !ok {
				b.NoNamespace(name)
			} else if !proto.Equal(n, was.Namespaces[name]) || rng.IntN(10) == 0 {
				b.Namespace(name, namespaceEntry(n))
			}
		}
		for id := range mapsUnion(was.Groups, is.Groups) {
			if g, ok := is.Groups[id]; !ok {
				b.NoGroup(id)
			} else if !proto.Equal(g, was.Groups[id]) || rng.IntN(10) == 0 {
				b.Group(id, groupEntry(g))
			}
		}
	}
}

func mapsUnion[K comparable, V any](a, b map[K]V) map[K]bool {
	out := map[K]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// indexOf is a whole report by key.
func indexOf(full *pdpb.StoreHeartbeatRequest) Index {
	idx := Index{Namespaces: map[string]*pdpb.NamespaceApplied{}, Groups: map[uint64]*pdpb.GroupStatus{}}
	for _, n := range full.GetNamespaces() {
		idx.Namespaces[n.GetNamespace()] = n
	}
	for _, g := range full.GetGroups() {
		idx.Groups[g.GetGroupId()] = g
	}
	return idx
}

// TestSweepsAreSpacedInTime: heartbeats sent many a second (a store
// reports every change at once) sweep no more often than SweepInterval.
func TestSweepsAreSpacedInTime(t *testing.T) {
	every := SweepEvery
	SweepEvery = 2
	defer func() { SweepEvery = every }()
	s := NewSender()
	sweeps := 0
	for range 100 {
		s.Build(&pdpb.StoreHeartbeatRequest{}, func(b *Builder) {
			if b.All() {
				sweeps++
			}
		})
		s.Acknowledge(true)
	}
	if sweeps != 1 {
		t.Fatalf("%d of 100 heartbeats in a row visited every entry; want only the first (whole) report", sweeps)
	}
}
