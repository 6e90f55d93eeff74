package namespace

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"strong", true}, {"eventual", true}, {"", false}, {"Strong", false}, {"linearizable", false}} {
		m, err := ParseMode(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseMode(%q) = %v, %v", tc.in, m, err)
		}
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("ParseMode(%q) code %v, want InvalidArgument", tc.in, status.Code(err))
		}
	}
}

func TestNext(t *testing.T) {
	strong := &storepb.NamespaceRecord{Name: "ns", Mode: "strong", Epoch: 3, Version: 9, GroupId: 4, GroupPeers: []uint64{1, 2}}
	fromDefault := &storepb.NamespaceRecord{Name: "ns", Mode: "strong", Epoch: 1, FromDefault: true}
	forced := &storepb.NamespaceRecord{Name: "ns", Mode: "strong", Epoch: 3, Force: true}
	for _, tc := range []struct {
		name    string
		cur     *storepb.NamespaceRecord
		req     SetRequest
		changed bool
		want    *storepb.NamespaceRecord // mode, epoch, from_default, force, group
	}{
		{"create", nil, SetRequest{Mode: Eventual}, true, &storepb.NamespaceRecord{Mode: "eventual", Epoch: 1}},
		{"create from default", nil, SetRequest{Mode: Strong, FromDefault: true}, true, &storepb.NamespaceRecord{Mode: "strong", Epoch: 1, FromDefault: true}},
		{"create forced records no force", nil, SetRequest{Mode: Strong, Force: true}, true, &storepb.NamespaceRecord{Mode: "strong", Epoch: 1}},
		{"same mode: no change", strong, SetRequest{Mode: Strong}, false, strong},
		{"only if absent", strong, SetRequest{Mode: Eventual, OnlyIfAbsent: true}, false, strong},
		{"default create of an existing one", strong, SetRequest{Mode: Strong, FromDefault: true}, false, strong},
		{"switch bumps the epoch, keeps the group", strong, SetRequest{Mode: Eventual}, true,
			&storepb.NamespaceRecord{Mode: "eventual", Epoch: 4, GroupId: 4, GroupPeers: []uint64{1, 2}}},
		{"force on a switch still rolling out", strong, SetRequest{Mode: Strong, Force: true}, true,
			&storepb.NamespaceRecord{Mode: "strong", Epoch: 3, Force: true, GroupId: 4, GroupPeers: []uint64{1, 2}}},
		{"force again: no change", forced, SetRequest{Mode: Strong, Force: true}, false, forced},
		{"unforced request on a forced row: no change", forced, SetRequest{Mode: Strong}, false, forced},
		{"configure a from-default namespace", fromDefault, SetRequest{Mode: Strong}, true, &storepb.NamespaceRecord{Mode: "strong", Epoch: 1}},
		{"switch clears force", forced, SetRequest{Mode: Eventual}, true, &storepb.NamespaceRecord{Mode: "eventual", Epoch: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before string
			if tc.cur != nil {
				before = tc.cur.String()
			}
			got, changed := Next(tc.cur, "ns", tc.req)
			if changed != tc.changed {
				t.Fatalf("changed = %v, want %v", changed, tc.changed)
			}
			if tc.cur != nil && tc.cur.String() != before {
				t.Fatalf("Next modified cur: %v", tc.cur)
			}
			if got.GetName() != "ns" || got.GetMode() != tc.want.GetMode() || got.GetEpoch() != tc.want.GetEpoch() ||
				got.GetFromDefault() != tc.want.GetFromDefault() || got.GetForce() != tc.want.GetForce() ||
				got.GetGroupId() != tc.want.GetGroupId() || len(got.GetGroupPeers()) != len(tc.want.GetGroupPeers()) {
				t.Fatalf("Next = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	active := &storepb.GroupState{ActiveEpoch: 1}
	fenced := &storepb.GroupState{ActiveEpoch: 1, FencedEpoch: 2}
	loading := &storepb.GroupState{ActiveEpoch: 1, FencedEpoch: 2, LoadingEpoch: 3, LoadId: 5}
	strong := &storepb.NamespaceRecord{Name: "ns", Mode: "strong", Epoch: 1, GroupId: 2}
	strong3 := &storepb.NamespaceRecord{Name: "ns", Mode: "strong", Epoch: 3, GroupId: 2}
	eventual := &storepb.NamespaceRecord{Name: "ns", Mode: "eventual", Epoch: 1}
	eventual2 := &storepb.NamespaceRecord{Name: "ns", Mode: "eventual", Epoch: 2, GroupId: 2}
	const ok, wrong, switching = codes.OK, codes.FailedPrecondition, codes.Aborted
	for _, tc := range []struct {
		name string
		rec  *storepb.NamespaceRecord
		gs   *storepb.GroupState
		a    Access
		code codes.Code
		src  Source
	}{
		{"cas on strong", strong, active, CasWrite, ok, FromGroup},
		{"cas on strong, replica behind: proposed anyway", strong3, fenced, CasWrite, ok, FromGroup},
		{"read on strong", strong, active, StrongRead, ok, FromGroup},
		{"read on strong while loading", strong3, loading, StrongRead, switching, 0},
		{"read on strong without a replica", strong, nil, StrongRead, switching, 0},
		{"raw write on strong", strong, active, RawWrite, wrong, 0},
		{"raw write on strong being loaded", strong3, loading, RawWrite, switching, 0},
		{"raw read on strong: from the state", strong, active, RawRead, ok, FromGroup},
		{"raw read on strong while loading", strong3, loading, RawRead, switching, 0},
		{"raw write on eventual", eventual, nil, RawWrite, ok, FromLWW},
		{"raw read on eventual", eventual, nil, RawRead, ok, FromLWW},
		{"cas on eventual", eventual, nil, CasWrite, wrong, 0},
		{"read on eventual", eventual, nil, StrongRead, wrong, 0},
		{"raw write before the fence", eventual2, active, RawWrite, switching, 0},
		{"raw read before the fence", eventual2, active, RawRead, switching, 0},
		{"raw write without a replica of a former group", eventual2, nil, RawWrite, switching, 0},
		{"cas while the fence is under way", eventual2, active, CasWrite, switching, 0},
		{"raw write after the fence", eventual2, fenced, RawWrite, ok, FromLWW},
		{"cas after the fence", eventual2, fenced, CasWrite, wrong, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Decide(tc.rec, tc.gs, tc.a)
			if status.Code(err) != tc.code {
				t.Fatalf("Decide = %v, want code %v", err, tc.code)
			}
			if err == nil && src != tc.src {
				t.Fatalf("source %v, want %v", src, tc.src)
			}
		})
	}
}

func TestStateOf(t *testing.T) {
	for _, tc := range []struct {
		rec  *storepb.NamespaceRecord
		gs   *storepb.GroupState
		want State
	}{
		{&storepb.NamespaceRecord{Mode: "strong", Epoch: 1, GroupId: 2}, &storepb.GroupState{ActiveEpoch: 1}, Active},
		{&storepb.NamespaceRecord{Mode: "strong", Epoch: 3, GroupId: 2}, &storepb.GroupState{ActiveEpoch: 1, FencedEpoch: 2}, Switching},
		{&storepb.NamespaceRecord{Mode: "eventual", Epoch: 1}, nil, Active},
		{&storepb.NamespaceRecord{Mode: "eventual", Epoch: 2, GroupId: 2}, &storepb.GroupState{ActiveEpoch: 1}, Switching},
		{&storepb.NamespaceRecord{Mode: "eventual", Epoch: 2, GroupId: 2}, &storepb.GroupState{ActiveEpoch: 1, FencedEpoch: 2}, Active},
	} {
		if got := StateOf(tc.rec, tc.gs); got != tc.want {
			t.Errorf("StateOf(%v, %v) = %v, want %v", tc.rec, tc.gs, got, tc.want)
		}
		if Serving(tc.rec, tc.gs) != (tc.want == Active && tc.rec.GetMode() == "eventual") {
			t.Errorf("Serving(%v, %v) disagrees with StateOf", tc.rec, tc.gs)
		}
	}
}

// TestSeedConfiguresOnlyWhatNobodyConfigured: a seed (OnlyIfAbsent) sets
// the mode of a namespace a call created in the default mode before the
// seed got there, and leaves a configured one alone.
func TestSeedConfiguresOnlyWhatNobodyConfigured(t *testing.T) {
	seed := SetRequest{Mode: Eventual, OnlyIfAbsent: true}
	implicit := &storepb.NamespaceRecord{Name: "logs", Mode: string(Strong), FromDefault: true, Epoch: 1, Version: 5}
	next, changed := Next(implicit, "logs", seed)
	if !changed || ModeOf(next) != Eventual || next.GetFromDefault() || next.GetEpoch() != 2 {
		t.Fatalf("seed over a namespace created by default: %v, %v", next, changed)
	}
	configured := &storepb.NamespaceRecord{Name: "logs", Mode: string(Strong), Epoch: 1, Version: 5}
	if next, changed := Next(configured, "logs", seed); changed || ModeOf(next) != Strong {
		t.Fatalf("seed over a configured namespace: %v, %v", next, changed)
	}
}
