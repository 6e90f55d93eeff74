package modeswitch

import (
	"math"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/namespace"
)

func ts(wall int64, logical uint32, store uint64) hlc.Timestamp {
	return hlc.Timestamp{Wall: wall, Logical: logical, StoreID: store}
}

func rec(key string, t hlc.Timestamp, tomb bool) *storepb.LWWRecord {
	r := &storepb.LWWRecord{Key: []byte(key), Ts: t.ToProto(), Tombstone: tomb}
	if !tomb {
		r.Value = []byte("v-" + key)
	}
	return r
}

func loadBegin(e, id uint64) *storepb.GroupCommand {
	return &storepb.GroupCommand{Cmd: &storepb.GroupCommand_LoadBegin{LoadBegin: &storepb.LoadBegin{Epoch: e, LoadId: id}}}
}

func loadBatch(e, id uint64, recs ...*storepb.LWWRecord) *storepb.GroupCommand {
	return &storepb.GroupCommand{Cmd: &storepb.GroupCommand_LoadBatch{LoadBatch: &storepb.LoadBatch{Epoch: e, LoadId: id, Records: recs}}}
}

func activate(e, id, n uint64) *storepb.GroupCommand {
	return &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Activate{Activate: &storepb.Activate{Epoch: e, LoadId: id, RecordsLoaded: n}}}
}

func fence(e uint64, t *hlc.Timestamp) *storepb.GroupCommand {
	f := &storepb.Fence{Epoch: e}
	if t != nil {
		f.Ts = t.ToProto()
	}
	return &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Fence{Fence: f}}
}

// apply runs steps from st and returns the final state and the effects.
func apply(t *testing.T, st *storepb.GroupState, cmds ...*storepb.GroupCommand) (*storepb.GroupState, []Effect) {
	t.Helper()
	var effs []Effect
	for _, c := range cmds {
		before := proto.Clone(st)
		next, eff, err := Step(st, c)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(before, st) {
			t.Fatal("Step modified its input")
		}
		st, effs = next, append(effs, eff)
	}
	return st, effs
}

func TestSwitchToStrongAndBack(t *testing.T) {
	st := &storepb.GroupState{ActiveEpoch: 1}
	t0 := ts(100, 0, 1)
	st, effs := apply(t, st, fence(2, &t0))
	if !effs[0].Convert || effs[0].ConvertTs != t0 || namespace.GroupActive(st) || st.GetConvertedEpoch() != 2 {
		t.Fatalf("fence of an active group: %v %+v", st, effs[0])
	}
	if !NeedsConversion(st) {
		t.Fatal("a converted, fenced state needs conversion on restore")
	}
	loaded := ts(500, 3, 2)
	st, effs = apply(t, st, loadBegin(3, 7), loadBatch(3, 7, rec("a", ts(200, 0, 2), false), rec("b", loaded, true)), activate(3, 7, 2))
	if !effs[0].ClearKeys || len(effs[1].Load) != 2 {
		t.Fatalf("load effects %+v", effs)
	}
	if NeedsConversion(st) || !namespace.GroupActive(st) || st.GetActiveEpoch() != 3 {
		t.Fatalf("after the load: %v", st)
	}
	if hlc.FromProto(st.GetMaxLoadedTs()) != loaded {
		t.Fatalf("max loaded ts %v, want %v", st.GetMaxLoadedTs(), loaded)
	}
	// The next fence, stamped below what was loaded, converts above it.
	t1 := ts(300, 0, 1)
	st, effs = apply(t, st, fence(4, &t1))
	if !loaded.Less(effs[0].ConvertTs) || effs[0].ConvertTs.StoreID != 1 {
		t.Fatalf("fence ts %v is not above the loaded %v", effs[0].ConvertTs, loaded)
	}
	if hlc.FromProto(st.GetFenceTs()) != effs[0].ConvertTs {
		t.Fatal("the state does not record the conversion's timestamp")
	}
}

func TestStaleAndForeignStepsChangeNothing(t *testing.T) {
	loading := &storepb.GroupState{ActiveEpoch: 1, FencedEpoch: 2, LoadingEpoch: 3, LoadId: 7, RecordsLoaded: 2}
	active := &storepb.GroupState{ActiveEpoch: 3, FencedEpoch: 2}
	for _, tc := range []struct {
		name string
		st   *storepb.GroupState
		cmd  *storepb.GroupCommand
	}{
		{"batch of another load", loading, loadBatch(3, 8, rec("x", ts(1, 0, 1), false))},
		{"batch of another epoch", loading, loadBatch(4, 7, rec("x", ts(1, 0, 1), false))},
		{"activation with the wrong count", loading, activate(3, 7, 3)},
		{"activation of another load", loading, activate(3, 8, 2)},
		{"load of an old epoch", loading, loadBegin(1, 9)},
		{"load without an id", loading, loadBegin(5, 0)},
		{"load into an active group", active, loadBegin(4, 9)},
		{"batch into an active group", active, loadBatch(3, 7, rec("x", ts(1, 0, 1), false))},
		{"old fence", active, fence(2, nil)},
		{"activation of an old epoch", active, activate(2, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, eff, err := Step(tc.st, tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if next != tc.st || eff.ClearKeys || eff.Convert || len(eff.Load) > 0 {
				t.Fatalf("Step = %v, %+v; want no change", next, eff)
			}
		})
	}
}

func TestAbandonedLoadIsNeverConverted(t *testing.T) {
	st := &storepb.GroupState{ActiveEpoch: 1}
	t0 := ts(100, 0, 1)
	// Fenced and converted (epoch 2), a load begins (3), the namespace
	// goes back to eventual (4) before activation: fence 4 converts
	// nothing, and a restore must not convert the half-loaded keys.
	st, effs := apply(t, st, fence(2, &t0), loadBegin(3, 5), loadBatch(3, 5, rec("a", ts(90, 0, 2), false)), fence(4, nil))
	if effs[3].Convert {
		t.Fatal("a fence of a group that is not active converted")
	}
	if NeedsConversion(st) {
		t.Fatalf("state %v: a restore would convert a half-loaded state", st)
	}
	if st.GetFencedEpoch() != 4 {
		t.Fatalf("fenced epoch %d", st.GetFencedEpoch())
	}
}

func TestSwitchedBackBeforeFence(t *testing.T) {
	st := &storepb.GroupState{ActiveEpoch: 1}
	st, _ = apply(t, st, activate(3, 0, 0))
	if st.GetActiveEpoch() != 3 || !namespace.GroupActive(st) {
		t.Fatalf("active group switched away and back: %v", st)
	}
}

func TestFenceTimestampSaturates(t *testing.T) {
	top := ts(math.MaxInt64, math.MaxUint32, 9)
	st := &storepb.GroupState{MaxLoadedTs: ts(5, math.MaxUint32, 3).ToProto(), FenceTs: top.ToProto()}
	got := FenceTimestamp(st, ts(1, 0, 1))
	if got.Less(top) {
		t.Fatalf("FenceTimestamp = %v, below the floor %v", got, top)
	}
	st = &storepb.GroupState{MaxLoadedTs: ts(5, math.MaxUint32, 3).ToProto()}
	if got := FenceTimestamp(st, ts(1, 0, 1)); got != ts(6, 0, 1) {
		t.Fatalf("FenceTimestamp over a logical carry = %v, want 6,0@1", got)
	}
	if got := FenceTimestamp(&storepb.GroupState{}, hlc.Timestamp{}); got.IsZero() {
		t.Fatal("an unstamped fence converts at the zero timestamp")
	}
}

func TestCheckStep(t *testing.T) {
	eventual := &storepb.NamespaceRecord{Name: "ns", Mode: "eventual", Epoch: 4, GroupId: 2}
	strong := &storepb.NamespaceRecord{Name: "ns", Mode: "strong", Epoch: 5, GroupId: 2}
	now := ts(100, 0, 1)
	cas := &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Cas{Cas: &storepb.CasCommand{Key: []byte("k")}}}
	for _, tc := range []struct {
		name string
		rec  *storepb.NamespaceRecord
		cmd  *storepb.GroupCommand
		code codes.Code
	}{
		{"fence of the row's epoch", eventual, fence(4, nil), codes.OK},
		{"fence with a timestamp", eventual, fence(4, &now), codes.InvalidArgument},
		{"fence of another epoch", eventual, fence(5, nil), codes.FailedPrecondition},
		{"fence of a strong row", strong, fence(5, nil), codes.FailedPrecondition},
		{"fence of an unknown group", nil, fence(4, nil), codes.FailedPrecondition},
		{"load of the row's epoch", strong, loadBegin(5, 1), codes.OK},
		{"load without an id", strong, loadBegin(5, 0), codes.InvalidArgument},
		{"load of another epoch", strong, loadBegin(6, 1), codes.FailedPrecondition},
		{"load into an eventual row", eventual, loadBegin(4, 1), codes.FailedPrecondition},
		{"batch", strong, loadBatch(5, 1, rec("a", now, false)), codes.OK},
		{"batch with a bad record", strong, loadBatch(5, 1, &storepb.LWWRecord{Key: []byte("a")}), codes.InvalidArgument},
		{"activation", strong, activate(5, 1, 3), codes.OK},
		{"activation in place", strong, activate(5, 0, 0), codes.OK},
		{"activation of another epoch", strong, activate(9, 0, 0), codes.FailedPrecondition},
		{"cas", strong, cas, codes.InvalidArgument},
		{"empty", strong, &storepb.GroupCommand{}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckStep(tc.rec, tc.cmd); status.Code(err) != tc.code {
				t.Fatalf("CheckStep = %v, want %v", err, tc.code)
			}
		})
	}
}

// FuzzCheckStep: any GroupCommand bytes a caller sends are checked without
// a panic, and whatever CheckStep accepts applies without an error.
func FuzzCheckStep(f *testing.F) {
	for _, c := range []*storepb.GroupCommand{fence(4, nil), loadBegin(5, 1), loadBatch(5, 1, rec("a", ts(1, 0, 1), false)), activate(5, 1, 1)} {
		b, _ := proto.Marshal(c)
		f.Add(b)
	}
	rows := []*storepb.NamespaceRecord{
		{Name: "ns", Mode: "eventual", Epoch: 4, GroupId: 2},
		{Name: "ns", Mode: "strong", Epoch: 5, GroupId: 2},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c storepb.GroupCommand
		if err := proto.Unmarshal(b, &c); err != nil {
			return
		}
		for _, r := range rows {
			if CheckStep(r, &c) != nil {
				continue
			}
			for _, st := range []*storepb.GroupState{{ActiveEpoch: 1}, {ActiveEpoch: 1, FencedEpoch: 4, LoadingEpoch: 5, LoadId: 1}} {
				if _, _, err := Step(st, &c); err != nil {
					t.Fatalf("an accepted step fails to apply: %v", err)
				}
			}
		}
	})
}
