package nsgroup

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/raftstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testGroup = 9

type fixture struct {
	db     *pebble.DB
	lww    *lww.Engine
	clock  *hlc.Clock
	groups *Groups
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	clock, err := hlc.New(hlc.Config{StoreID: 1})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := lww.New(lww.Config{StoreID: 1, DB: db, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = eng.Close()
		_ = db.Close()
	})
	f := &fixture{db: db, lww: eng, clock: clock}
	f.groups = New(Deps{DB: db, LWW: eng, Clock: clock, Namespace: func(g uint64) (string, bool) { return "flip", g == testGroup }})
	return f
}

// put writes a group's state and strong keys directly, as a past apply did.
func (f *fixture) put(t *testing.T, st *storepb.GroupState, strong map[string]string) {
	t.Helper()
	b, _ := proto.Marshal(st)
	if err := f.db.Set(keys.GroupState(testGroup), b, nil); err != nil {
		t.Fatal(err)
	}
	for k, v := range strong {
		if err := f.db.Set(keys.StrongKey(testGroup, []byte(k)), encodeValue(6, []byte(v)), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) open(t *testing.T) *Group {
	t.Helper()
	g, err := f.groups.Open(testGroup)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (f *fixture) lwwGet(t *testing.T, key string) *storepb.LWWRecord {
	t.Helper()
	r, _, err := f.lww.Get("flip", []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func command(t *testing.T, c *storepb.GroupCommand) []byte {
	t.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFenceStagesInApplyBatch: the conversion a fence makes is written in
// the apply batch: nothing of it is visible before the batch commits, all
// of it after; the published state changes only after the commit too.
func TestFenceStagesInApplyBatch(t *testing.T) {
	f := newFixture(t)
	f.put(t, &storepb.GroupState{ActiveEpoch: 1}, map[string]string{"a": "va"})
	g := f.open(t)
	ts := hlc.Timestamp{Wall: time.Now().UnixNano(), StoreID: 2}
	b := f.db.NewIndexedBatch()
	defer b.Close()
	ac := raftstore.NewApplyContext(b)
	if _, err := g.Apply(ac, 20, command(t, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Fence{Fence: &storepb.Fence{Epoch: 2, Ts: ts.ToProto()}}})); err != nil {
		t.Fatal(err)
	}
	if r := f.lwwGet(t, "a"); r != nil {
		t.Fatalf("the fence's conversion is in the DB before its apply batch is committed: %v", r)
	}
	if g.State().GetFencedEpoch() != 0 {
		t.Fatal("the fenced state is published before its batch is committed")
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ac.Done(true)
	r := f.lwwGet(t, "a")
	if string(r.GetValue()) != "va" || hlc.FromProto(r.GetTs()) != ts {
		t.Fatalf("after the commit a = %v, want va at %v", r, ts)
	}
	if st := g.State(); st.GetFencedEpoch() != 2 || st.GetConvertedEpoch() != 2 {
		t.Fatalf("published state %v, want fenced and converted at epoch 2", st)
	}
	// A local write after the fence is stamped after it.
	if got, err := f.clock.Now(); err != nil || !ts.Less(got) {
		t.Fatalf("clock after the fence: %v (%v), want after %v", got, err, ts)
	}
}

// TestFenceDroppedBatchChangesNothing: a fence whose apply batch is not
// committed (the store stops) leaves the LWW replica and the published
// state as they were, and releases the namespace.
func TestFenceDroppedBatchChangesNothing(t *testing.T) {
	f := newFixture(t)
	f.put(t, &storepb.GroupState{ActiveEpoch: 1}, map[string]string{"a": "va"})
	g := f.open(t)
	b := f.db.NewIndexedBatch()
	ac := raftstore.NewApplyContext(b)
	ts := hlc.Timestamp{Wall: time.Now().UnixNano(), StoreID: 2}
	if _, err := g.Apply(ac, 20, command(t, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Fence{Fence: &storepb.Fence{Epoch: 2, Ts: ts.ToProto()}}})); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	ac.Done(false)
	if g.State().GetFencedEpoch() != 0 || f.lwwGet(t, "a") != nil {
		t.Fatal("a dropped fence batch changed the state or the LWW replica")
	}
	// The namespace is free again: a write goes through.
	if _, err := f.lww.Merge("flip", []*storepb.LWWRecord{{Key: []byte("b"), Ts: ts.ToProto()}}, true); err != nil {
		t.Fatal(err)
	}
}

// restore writes a snapshot's state keys into a batch, as the Raft loop
// does, and runs Restore.
func (f *fixture) restore(t *testing.T, g *Group, st *storepb.GroupState, strong map[string]string) {
	t.Helper()
	b := f.db.NewIndexedBatch()
	defer b.Close()
	prefix := keys.StatePrefix(testGroup)
	if err := b.DeleteRange(prefix, keys.PrefixEnd(prefix), nil); err != nil {
		t.Fatal(err)
	}
	sb, _ := proto.Marshal(st)
	_ = b.Set(keys.GroupState(testGroup), sb, nil)
	for k, v := range strong {
		_ = b.Set(keys.StrongKey(testGroup, []byte(k)), encodeValue(6, []byte(v)), nil)
	}
	ac := raftstore.NewApplyContext(b)
	if err := g.Restore(ac); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ac.Done(true)
}

// TestRestoreDoesNotReconvertHalfLoadedState: a replica restored from a
// snapshot taken while a load was in progress, or after a load that was
// abandoned by a switch back to eventual, must not convert that state into
// LWW records at the old fence timestamp (whose tombstones would win ties
// and delete acknowledged data on every store).
func TestRestoreDoesNotReconvertHalfLoadedState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state *storepb.GroupState
	}{
		{"load in progress", &storepb.GroupState{ActiveEpoch: 1, FencedEpoch: 2, LoadingEpoch: 3, LoadId: 7}},
		{"load abandoned", &storepb.GroupState{ActiveEpoch: 1, FencedEpoch: 4, LoadingEpoch: 3, LoadId: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			fenceTs := hlc.Timestamp{Wall: time.Now().Add(-time.Minute).UnixNano(), StoreID: 2}
			// "a" was converted from the strong state by the fence of epoch 2.
			if _, err := f.lww.Merge("flip", []*storepb.LWWRecord{{Key: []byte("a"), Value: []byte("va"), Ts: fenceTs.ToProto()}}, true); err != nil {
				t.Fatal(err)
			}
			g := f.open(t)
			st := proto.Clone(tc.state).(*storepb.GroupState)
			st.FenceTs = fenceTs.ToProto()
			f.restore(t, g, st, map[string]string{"half": "loaded"})
			if r := f.lwwGet(t, "a"); r.GetTombstone() {
				t.Fatal("restoring a half-loaded state deleted the converted record of \"a\" at the old fence timestamp")
			}
			if r := f.lwwGet(t, "half"); r != nil {
				t.Fatalf("restoring a half-loaded state converted its keys into LWW records: %v", r)
			}
			if g.State().GetLoadingEpoch() != 3 {
				t.Fatalf("restored state %v", g.State())
			}
		})
	}
}

// TestRestoreConvertsFencedState: a replica restored from a snapshot taken
// after a converting fence (it never applied the fence itself) converts
// the snapshot's keys, at the fence timestamp, in the same batch.
func TestRestoreConvertsFencedState(t *testing.T) {
	f := newFixture(t)
	fenceTs := hlc.Timestamp{Wall: time.Now().Add(-time.Minute).UnixNano(), StoreID: 2}
	old := hlc.Timestamp{Wall: fenceTs.Wall - int64(time.Hour), StoreID: 3}
	if _, err := f.lww.Merge("flip", []*storepb.LWWRecord{{Key: []byte("gone"), Value: []byte("old"), Ts: old.ToProto()}}, true); err != nil {
		t.Fatal(err)
	}
	g := f.open(t)
	st := &storepb.GroupState{ActiveEpoch: 1, FencedEpoch: 2, FenceTs: fenceTs.ToProto(), ConvertedEpoch: 2}
	f.restore(t, g, st, map[string]string{"a": "va"})
	if r := f.lwwGet(t, "a"); string(r.GetValue()) != "va" || hlc.FromProto(r.GetTs()) != fenceTs {
		t.Fatalf("a = %v, want va at the fence timestamp", r)
	}
	if r := f.lwwGet(t, "gone"); !r.GetTombstone() || hlc.FromProto(r.GetTs()) != fenceTs {
		t.Fatalf("gone = %v, want a tombstone at the fence timestamp", r)
	}
}

// TestApplyErrors: an undecodable command or stored value is an error
// (which stops the store), never a result handed to the proposer.
func TestApplyErrors(t *testing.T) {
	f := newFixture(t)
	f.put(t, &storepb.GroupState{ActiveEpoch: 1}, nil)
	if err := f.db.Set(keys.StrongKey(testGroup, []byte("bad")), []byte{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	g := f.open(t)
	for name, cmd := range map[string][]byte{
		"undecodable command": {0xff, 0xff, 0xff},
		"no command":          command(t, &storepb.GroupCommand{}),
		"cas on undecodable value": command(t, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Cas{Cas: &storepb.CasCommand{
			Key: []byte("bad"), Value: []byte("v"), ExpectedVersion: 1}}}),
		"delete of undecodable value": command(t, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Delete{Delete: &storepb.DeleteCommand{
			Key: []byte("bad")}}}),
	} {
		b := f.db.NewIndexedBatch()
		ac := raftstore.NewApplyContext(b)
		res, err := g.Apply(ac, 30, cmd)
		if err == nil {
			t.Errorf("%s: Apply = %v, nil; want an error", name, res)
		}
		ac.Done(false)
		_ = b.Close()
	}
}

// TestUnreadableStateFailsOpen: a switch state that cannot be decoded
// fails Open instead of starting the group empty.
func TestUnreadableStateFailsOpen(t *testing.T) {
	f := newFixture(t)
	if err := f.db.Set(keys.GroupState(testGroup), []byte{0xff, 0xff}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.groups.Open(testGroup); err == nil {
		t.Fatal("Open with an undecodable state succeeded")
	}
	if f.groups.Get(testGroup) != nil {
		t.Fatal("a group that failed to open is registered")
	}
}

// FuzzApply: any command bytes in a group's log, applied to any switch
// state, either apply or return an error (which stops the store); nothing
// panics.
func FuzzApply(f *testing.F) {
	for _, c := range []*storepb.GroupCommand{
		{Cmd: &storepb.GroupCommand_Cas{Cas: &storepb.CasCommand{Key: []byte("k"), Value: []byte("v")}}},
		{Cmd: &storepb.GroupCommand_Delete{Delete: &storepb.DeleteCommand{Key: []byte("k"), ExpectedVersion: 3}}},
		{Cmd: &storepb.GroupCommand_Fence{Fence: &storepb.Fence{Epoch: 2, Ts: &storepb.Timestamp{WallTime: 5, StoreId: 1}}}},
		{Cmd: &storepb.GroupCommand_LoadBegin{LoadBegin: &storepb.LoadBegin{Epoch: 3, LoadId: 1}}},
		{Cmd: &storepb.GroupCommand_LoadBatch{LoadBatch: &storepb.LoadBatch{Epoch: 3, LoadId: 1, Records: []*storepb.LWWRecord{{Key: []byte("a"), Ts: &storepb.Timestamp{WallTime: 1}}}}}},
		{Cmd: &storepb.GroupCommand_Activate{Activate: &storepb.Activate{Epoch: 3, LoadId: 1, RecordsLoaded: 1}}},
	} {
		b, _ := proto.Marshal(c)
		f.Add(b, uint64(1), uint64(0))
		f.Add(b, uint64(1), uint64(2))
	}
	f.Fuzz(func(t *testing.T, cmd []byte, active, fenced uint64) {
		fx := newFixture(t)
		fx.put(t, &storepb.GroupState{ActiveEpoch: active, FencedEpoch: fenced}, map[string]string{"k": "v"})
		g := fx.open(t)
		b := fx.db.NewIndexedBatch()
		defer b.Close()
		ac := raftstore.NewApplyContext(b)
		_, err := g.Apply(ac, 10, cmd)
		if err == nil {
			err = b.Commit(pebble.NoSync)
		}
		ac.Done(err == nil)
	})
}

// TestWaitWakesWhenTheGroupOpens: a caller waiting for a group's replica
// wakes when it is registered, one whose wait ends first learns it is not
// here, and no waiter is left behind either way.
func TestWaitWakesWhenTheGroupOpens(t *testing.T) {
	f := newFixture(t)
	short, cancel := context.WithCancel(context.Background())
	cancel()
	if f.groups.Wait(short, testGroup) {
		t.Fatal("Wait says a group that was never opened is here")
	}
	woke := make(chan bool)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		woke <- f.groups.Wait(ctx, testGroup)
	}()
	// Opened once the waiter is registered, so that it is woken, not
	// answered at once.
	for deadline := time.Now().Add(10 * time.Second); ; {
		f.groups.mu.RLock()
		n := len(f.groups.waiters[testGroup])
		f.groups.mu.RUnlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiter never registered")
		}
		runtime.Gosched()
	}
	f.open(t)
	select {
	case here := <-woke:
		if !here {
			t.Fatal("Wait woke and says the opened group is not here")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not wake when the group opened")
	}
	if !f.groups.Wait(short, testGroup) {
		t.Fatal("Wait on an open group says it is not here")
	}
	if len(f.groups.waiters) != 0 {
		t.Fatalf("waiters left behind: %v", f.groups.waiters)
	}
}
