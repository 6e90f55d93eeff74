package store

// StoreInternal: what stores (and the placement driver) call on each
// other: Raft traffic, joins (static mode), LWW replication, and the steps
// of mode switches. Switch steps are checked against this store's own row
// (modeswitch.CheckStep), and a store reports a step (SwitchStatus, Dump)
// only once it is durable.

import (
	"context"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/modeswitch"
	"github.com/rdb-project/rdb/store/namespace"
	"github.com/rdb-project/rdb/store/raftstore"
	"github.com/rdb-project/rdb/store/security"
)

type internalService struct {
	storepb.UnimplementedStoreInternalServer
	s *Store
}

// Streams from other stores never end by themselves: they are cut when
// this store stops, so that a graceful stop does not wait for them.

func (i *internalService) Raft(stream storepb.StoreInternal_RaftServer) error {
	return i.s.untilStopped(func() error { return i.s.tr.HandleRaft(raftStream{stream}) })
}

func (i *internalService) Snapshot(stream storepb.StoreInternal_SnapshotServer) error {
	return i.s.untilStopped(func() error { return i.s.tr.HandleSnapshot(snapshotStream{stream}) })
}

func (i *internalService) Join(ctx context.Context, req *storepb.JoinRequest) (*storepb.JoinResponse, error) {
	if err := security.RequireStore(ctx, req.GetStoreId()); err != nil {
		return nil, err
	}
	if i.s.meta == nil {
		return nil, status.Error(codes.FailedPrecondition, "this store follows a placement driver: start new stores with --pd, not --peer")
	}
	ctx, cancel := i.s.withTimeout(ctx)
	defer cancel()
	return i.s.meta.Join(ctx, req)
}

func (i *internalService) Replicate(stream storepb.StoreInternal_ReplicateServer) error {
	return i.s.untilStopped(func() error { return i.s.lww.HandleReplicate(replicateStream{stream}) })
}

// untilStopped runs a stream handler until it returns or the store stops.
func (s *Store) untilStopped(fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- fn() }()
	select {
	case err := <-errc:
		return err
	case <-s.ctx.Done():
		return api.ErrStopping
	}
}

func (i *internalService) Digest(ctx context.Context, req *storepb.DigestRequest) (*storepb.DigestResponse, error) {
	return i.s.lww.HandleDigest(ctx, req)
}

func (i *internalService) Repair(ctx context.Context, req *storepb.RepairRequest) (*storepb.RepairResponse, error) {
	if err := security.RequireStore(ctx, req.GetFromStore()); err != nil {
		return nil, err
	}
	return i.s.lww.HandleRepair(ctx, req)
}

// syncReported makes everything this store has committed durable before
// it reports it: apply batches are written unsynced, and a store that
// reported a row and lost it in a crash would accept writes no merge sees.
// Pebble's log is ordered, so one synced write covers every earlier batch.
func (s *Store) syncReported() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		s.fatal(err)
		return api.Internal("sync: %v", err)
	}
	return nil
}

func (i *internalService) SwitchStatus(ctx context.Context, req *storepb.SwitchStatusRequest) (*storepb.SwitchStatusResponse, error) {
	rec, ok := i.s.table.Get(req.GetNamespace())
	if !ok {
		return &storepb.SwitchStatusResponse{}, nil
	}
	out := &storepb.SwitchStatusResponse{Record: rec, Fenced: namespace.ModeOf(rec) == namespace.Strong}
	if gs := i.s.groups.State(rec.GetGroupId()); gs != nil {
		out.Group, out.HasGroup = gs, true
	}
	if err := i.s.syncReported(); err != nil {
		return nil, err
	}
	return out, nil
}

// Dump streams this store's LWW records of a namespace whose raw writes
// are fenced (the store has durably applied a strong row of at least
// version).
func (i *internalService) Dump(req *storepb.DumpRequest, stream storepb.StoreInternal_DumpServer) error {
	rec, ok := i.s.table.Get(req.GetNamespace())
	if !ok || !modeswitch.Fenced(rec, &storepb.NamespaceRecord{Version: req.GetVersion(), Epoch: rec.GetEpoch()}) ||
		namespace.ModeOf(rec) != namespace.Strong {
		return status.Errorf(codes.FailedPrecondition, "namespace %q is not fenced at version %d on store %d yet",
			req.GetNamespace(), req.GetVersion(), i.s.cfg.StoreID)
	}
	if err := i.s.syncReported(); err != nil {
		return err
	}
	return i.s.lww.Dump(req.GetNamespace(), func(recs []*storepb.LWWRecord) error {
		return stream.Send(&storepb.DumpResponse{Records: recs})
	})
}

// GroupPropose proposes a switch step to a group of which this store holds
// a replica. The step must be one this store's row calls for; a fence is
// stamped here, with this store's clock, and a load's records must carry
// timestamps this store's clock would accept.
func (i *internalService) GroupPropose(ctx context.Context, req *storepb.GroupProposeRequest) (*storepb.GroupProposeResponse, error) {
	ctx, cancel := i.s.withTimeout(ctx)
	defer cancel()
	group := req.GetGroupId()
	var rec *storepb.NamespaceRecord
	if ns, ok := i.s.table.NamespaceOfGroup(group); ok {
		rec, _ = i.s.table.Get(ns)
	}
	cmd := req.GetCommand()
	if err := modeswitch.CheckStep(rec, cmd); err != nil {
		return nil, err
	}
	g := i.s.groups.Get(group)
	if g == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "store %d holds no replica of group %d", i.s.cfg.StoreID, group)
	}
	cmd = proto.Clone(cmd).(*storepb.GroupCommand)
	switch x := cmd.GetCmd().(type) {
	case *storepb.GroupCommand_Fence:
		ts, err := i.s.clock.Now()
		if err != nil {
			return nil, api.Internal("clock: %v", err)
		}
		x.Fence.Ts = ts.ToProto()
	case *storepb.GroupCommand_LoadBatch:
		for _, r := range x.LoadBatch.GetRecords() {
			if err := i.s.clock.CheckAhead(hlc.FromProto(r.GetTs())); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "load batch: key %q: %v", r.GetKey(), err)
			}
		}
	}
	b, err := proto.Marshal(cmd)
	if err != nil {
		return nil, api.Internal("encode: %v", err)
	}
	if _, err := i.s.raft.ProposeRetrying(ctx, group, b); err != nil {
		return nil, raftstore.WriteError(err, "the namespace group")
	}
	return &storepb.GroupProposeResponse{State: g.State()}, nil
}

// GroupStatus reads a group's switch state linearizably.
func (i *internalService) GroupStatus(ctx context.Context, req *storepb.GroupStatusRequest) (*storepb.GroupStatusResponse, error) {
	ctx, cancel := i.s.withTimeout(ctx)
	defer cancel()
	if err := i.s.raft.ReadIndexRetrying(ctx, req.GetGroupId()); err != nil {
		return nil, raftstore.ReadError(err, "the namespace group")
	}
	g := i.s.groups.Get(req.GetGroupId())
	if g == nil {
		return nil, status.Error(codes.NotFound, "no such group here")
	}
	resp := &storepb.GroupStatusResponse{State: g.State()}
	if st, ok := i.s.raft.Status(req.GetGroupId()); ok {
		resp.Voters, resp.Learners = st.Voters, st.Learners
	}
	return resp, nil
}
