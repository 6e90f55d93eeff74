package modeswitch

// The driver against a fake cluster: stores that answer SwitchStatus, Dump,
// GroupPropose and GroupStatus from memory, and one namespace group whose
// replicas apply steps with Step, as real ones do.

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/namespace"
)

const group = 2

type fakeCluster struct {
	mu     sync.Mutex
	row    *storepb.NamespaceRecord // the row as the table decided it
	stores map[uint64]*fakeStore
	state  *storepb.GroupState
	keys   map[string][]byte // the group's keys
	steps  []string          // steps the group applied, by kind
	stamps []hlc.Timestamp   // fence timestamps
}

type fakeStore struct {
	storepb.StoreInternalClient
	c       *fakeCluster
	id      uint64
	row     *storepb.NamespaceRecord // this store's row
	records []*storepb.LWWRecord
	down    bool
}

func newFakeCluster(row *storepb.NamespaceRecord, st *storepb.GroupState) *fakeCluster {
	c := &fakeCluster{row: row, stores: map[uint64]*fakeStore{}, state: st, keys: map[string][]byte{}}
	for id := uint64(1); id <= 3; id++ {
		c.stores[id] = &fakeStore{c: c, id: id, row: proto.Clone(row).(*storepb.NamespaceRecord)}
	}
	return c
}

func (c *fakeCluster) Namespaces() []*storepb.NamespaceRecord {
	return []*storepb.NamespaceRecord{c.row}
}
func (c *fakeCluster) Stores() []*storepb.StoreInfo {
	var out []*storepb.StoreInfo
	for id := uint64(1); id <= 3; id++ {
		out = append(out, &storepb.StoreInfo{Id: id, Addr: fmt.Sprintf("store-%d", id)})
	}
	return out
}
func (c *fakeCluster) Client(id uint64) (storepb.StoreInternalClient, error) {
	return c.stores[id], nil
}
func (c *fakeCluster) KnownState(uint64) (*storepb.GroupState, bool) { return nil, false }

var errDown = status.Error(codes.Unavailable, "store is down")

func (s *fakeStore) SwitchStatus(ctx context.Context, req *storepb.SwitchStatusRequest, _ ...grpc.CallOption) (*storepb.SwitchStatusResponse, error) {
	if s.down {
		return nil, errDown
	}
	return &storepb.SwitchStatusResponse{Record: s.row, Fenced: namespace.ModeOf(s.row) == namespace.Strong}, nil
}

func (s *fakeStore) Dump(ctx context.Context, req *storepb.DumpRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[storepb.DumpResponse], error) {
	if s.down {
		return nil, errDown
	}
	if !Fenced(s.row, &storepb.NamespaceRecord{Version: req.GetVersion(), Epoch: s.row.GetEpoch()}) {
		return nil, status.Error(codes.FailedPrecondition, "not fenced")
	}
	return &dumpStream{recs: slices.Clone(s.records)}, nil
}

func (s *fakeStore) GroupPropose(ctx context.Context, req *storepb.GroupProposeRequest, _ ...grpc.CallOption) (*storepb.GroupProposeResponse, error) {
	if s.down {
		return nil, errDown
	}
	if err := CheckStep(s.row, req.GetCommand()); err != nil {
		return nil, err
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := proto.Clone(req.GetCommand()).(*storepb.GroupCommand)
	if f := cmd.GetFence(); f != nil {
		f.Ts = hlc.Timestamp{Wall: 1000 + int64(len(c.stamps)), StoreID: s.id}.ToProto()
		c.stamps = append(c.stamps, hlc.FromProto(f.Ts))
	}
	next, eff, err := Step(c.state, cmd)
	if err != nil {
		return nil, err
	}
	if eff.ClearKeys {
		c.keys = map[string][]byte{}
	}
	for _, r := range eff.Load {
		if !r.GetTombstone() {
			c.keys[string(r.GetKey())] = r.GetValue()
		}
	}
	c.state = next
	kind := fmt.Sprintf("%T", cmd.GetCmd())
	c.steps = append(c.steps, strings.TrimPrefix(kind, "*storepb.GroupCommand_"))
	return &storepb.GroupProposeResponse{State: next}, nil
}

func (s *fakeStore) GroupStatus(ctx context.Context, req *storepb.GroupStatusRequest, _ ...grpc.CallOption) (*storepb.GroupStatusResponse, error) {
	if s.down {
		return nil, errDown
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return &storepb.GroupStatusResponse{State: s.c.state}, nil
}

type dumpStream struct {
	grpc.ClientStream
	recs []*storepb.LWWRecord
}

func (d *dumpStream) Recv() (*storepb.DumpResponse, error) {
	if len(d.recs) == 0 {
		return nil, io.EOF
	}
	n := min(2, len(d.recs))
	out := &storepb.DumpResponse{Records: d.recs[:n]}
	d.recs = d.recs[n:]
	return out, nil
}

func newDriver(c Cluster) *Driver { return New(c, zap.NewNop(), 0) }

// switchToStrong is a namespace that was eventual (epoch 1) and is now
// strong (epoch 2) on every store, with records spread over the stores.
func switchToStrong() *fakeCluster {
	row := &storepb.NamespaceRecord{Name: "ns", Mode: "strong", Epoch: 2, Version: 10, GroupId: group, GroupPeers: []uint64{1, 2, 3}}
	c := newFakeCluster(row, InitialState(row))
	c.stores[1].records = []*storepb.LWWRecord{rec("a", ts(10, 0, 1), false), rec("b", ts(10, 0, 1), false), rec("c", ts(30, 0, 1), false)}
	c.stores[2].records = []*storepb.LWWRecord{rec("a", ts(20, 0, 2), false), rec("b", ts(20, 0, 2), true)}
	c.stores[3].records = []*storepb.LWWRecord{rec("c", ts(30, 0, 1), true), rec("d", ts(5, 0, 3), false)}
	return c
}

func TestDriverMergesLoadsActivates(t *testing.T) {
	c := switchToStrong()
	if err := newDriver(c).Reconcile(context.Background(), c.row); err != nil {
		t.Fatal(err)
	}
	if !Done(c.row, c.state) {
		t.Fatalf("group %v does not carry out %v", c.state, c.row)
	}
	// a: newest write (store 2); b: deleted by a newer tombstone; c: a
	// tombstone wins the tie; d: only store 3 had it.
	want := map[string]string{"a": "v-a", "d": "v-d"}
	if len(c.keys) != len(want) {
		t.Fatalf("loaded keys %v, want %v", c.keys, want)
	}
	for k, v := range want {
		if string(c.keys[k]) != v {
			t.Fatalf("loaded %s = %q, want %q", k, c.keys[k], v)
		}
	}
	if c.state.GetRecordsLoaded() != 4 {
		t.Fatalf("records loaded %d, want 4 (tombstones count)", c.state.GetRecordsLoaded())
	}
	if c.steps[0] != "LoadBegin" || c.steps[len(c.steps)-1] != "Activate" {
		t.Fatalf("steps %v", c.steps)
	}
	// Done: nothing more to do.
	n := len(c.steps)
	if err := newDriver(c).Reconcile(context.Background(), c.row); err != nil || len(c.steps) != n {
		t.Fatalf("a finished switch is driven again: %v, steps %v", err, c.steps)
	}
}

func TestDriverWaitsForEveryStore(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		c := switchToStrong()
		c.stores[3].down = true
		err := newDriver(c).Reconcile(context.Background(), c.row)
		if err == nil || !strings.Contains(err.Error(), "store 3") || !strings.Contains(err.Error(), "force") {
			t.Fatalf("Reconcile = %v, want a hold on store 3 that mentions force", err)
		}
		if len(c.steps) != 0 {
			t.Fatalf("steps proposed while a store is unreachable: %v", c.steps)
		}
	})
	t.Run("not fenced yet", func(t *testing.T) {
		c := switchToStrong()
		c.stores[2].row = &storepb.NamespaceRecord{Name: "ns", Mode: "eventual", Epoch: 1, Version: 4}
		err := newDriver(c).Reconcile(context.Background(), c.row)
		if err == nil || !strings.Contains(err.Error(), "store 2") {
			t.Fatalf("Reconcile = %v, want a wait for store 2", err)
		}
		if len(c.steps) != 0 {
			t.Fatalf("steps proposed before every store fenced: %v", c.steps)
		}
	})
	t.Run("forced", func(t *testing.T) {
		c := switchToStrong()
		c.row.Force = true
		for _, s := range c.stores {
			s.row.Force = true
		}
		c.stores[3].down = true
		if err := newDriver(c).Reconcile(context.Background(), c.row); err != nil {
			t.Fatal(err)
		}
		if !Done(c.row, c.state) {
			t.Fatalf("forced switch did not activate: %v", c.state)
		}
		if _, ok := c.keys["d"]; ok {
			t.Fatal("the forced switch loaded a record of the store it went without")
		}
	})
}

func TestDriverResumesAfterAStaleLoad(t *testing.T) {
	c := switchToStrong()
	// A previous driver began a load and loaded part of it.
	c.state, _, _ = Step(c.state, loadBegin(2, 99))
	c.state, _, _ = Step(c.state, loadBatch(2, 99, rec("zz", ts(1, 0, 1), false)))
	if err := newDriver(c).Reconcile(context.Background(), c.row); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.keys["zz"]; ok || !Done(c.row, c.state) {
		t.Fatalf("resumed switch: keys %v, state %v", c.keys, c.state)
	}
	// The stale driver's activation, late, changes nothing.
	next, _, _ := Step(c.state, activate(2, 99, 1))
	if next != c.state {
		t.Fatal("a stale load's activation changed an active group")
	}
}

func TestDriverFencesToEventual(t *testing.T) {
	row := &storepb.NamespaceRecord{Name: "ns", Mode: "eventual", Epoch: 3, Version: 12, GroupId: group, GroupPeers: []uint64{1, 2, 3}}
	c := newFakeCluster(row, &storepb.GroupState{ActiveEpoch: 2})
	if err := newDriver(c).Reconcile(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	if !Done(row, c.state) || len(c.stamps) != 1 {
		t.Fatalf("state %v, fence stamps %v", c.state, c.stamps)
	}
	if hlc.FromProto(c.state.GetFenceTs()) != c.stamps[0] {
		t.Fatalf("the group converted at %v, not at the stamp %v", c.state.GetFenceTs(), c.stamps[0])
	}
}

func TestDriverContinuesAnActiveGroup(t *testing.T) {
	// strong (2) -> eventual (3) -> strong (4) before the group was fenced.
	row := &storepb.NamespaceRecord{Name: "ns", Mode: "strong", Epoch: 4, Version: 14, GroupId: group}
	c := newFakeCluster(row, &storepb.GroupState{ActiveEpoch: 2})
	if err := newDriver(c).Reconcile(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	if c.state.GetActiveEpoch() != 4 || !slices.Equal(c.steps, []string{"Activate"}) {
		t.Fatalf("state %v after steps %v, want one Activate", c.state, c.steps)
	}
}

// TestDriverIgnoresUnformedGroup: an eventual row whose group never got
// voters (it was strong only before any store could hold it) has nothing to
// fence; the driver asks no store about it.
func TestDriverIgnoresUnformedGroup(t *testing.T) {
	row := &storepb.NamespaceRecord{Name: "ns", Mode: "eventual", Epoch: 2, Version: 12, GroupId: group}
	c := newFakeCluster(row, &storepb.GroupState{})
	if err := newDriver(c).Reconcile(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	if len(c.stamps) != 0 {
		t.Fatalf("fenced a group that never formed: stamps %v", c.stamps)
	}
}
