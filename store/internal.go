package store

// StoreInternal: what stores (and the placement driver) call on each
// other.

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
)

type internalService struct {
	storepb.UnimplementedStoreInternalServer
	s *Store
}

// Streams from other stores never end by themselves: they are cut when
// this store stops, so that a graceful stop does not wait for them.

func (i *internalService) Raft(stream storepb.StoreInternal_RaftServer) error {
	return i.s.untilStopped(func() error { return i.s.tr.HandleRaft(stream) })
}

func (i *internalService) Snapshot(stream storepb.StoreInternal_SnapshotServer) error {
	return i.s.untilStopped(func() error { return i.s.tr.HandleSnapshot(stream) })
}

func (i *internalService) Join(ctx context.Context, req *storepb.JoinRequest) (*storepb.JoinResponse, error) {
	ctx, cancel := i.s.withTimeout(ctx)
	defer cancel()
	return i.s.join(ctx, req)
}

func (i *internalService) Replicate(stream storepb.StoreInternal_ReplicateServer) error {
	return i.s.untilStopped(func() error { return i.s.lww.HandleReplicate(stream) })
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
	return i.s.lww.HandleRepair(ctx, req)
}

func (i *internalService) SwitchStatus(ctx context.Context, req *storepb.SwitchStatusRequest) (*storepb.SwitchStatusResponse, error) {
	rec, ok := i.s.table.Get(req.GetNamespace())
	if !ok {
		return &storepb.SwitchStatusResponse{}, nil
	}
	out := &storepb.SwitchStatusResponse{Record: rec, Fenced: rec.GetMode() == api.ModeStrong}
	if g := i.s.group(rec.GetGroupId()); g != nil {
		out.Group, out.HasGroup = g.State(), true
	}
	return out, nil
}

// Dump streams this store's LWW records of a namespace whose raw writes
// are fenced (the store has applied a strong row of at least version).
func (i *internalService) Dump(req *storepb.DumpRequest, stream storepb.StoreInternal_DumpServer) error {
	rec, ok := i.s.table.Get(req.GetNamespace())
	if !ok || rec.GetVersion() < req.GetVersion() || rec.GetMode() != api.ModeStrong {
		return status.Errorf(codes.FailedPrecondition, "namespace %q is not fenced at version %d on store %d yet",
			req.GetNamespace(), req.GetVersion(), i.s.cfg.StoreID)
	}
	return i.s.lww.Dump(req.GetNamespace(), func(recs []*storepb.LWWRecord) error {
		return stream.Send(&storepb.DumpResponse{Records: recs})
	})
}

// GroupPropose proposes a switch step to a group. A fence without a
// timestamp is stamped here.
func (i *internalService) GroupPropose(ctx context.Context, req *storepb.GroupProposeRequest) (*storepb.GroupProposeResponse, error) {
	ctx, cancel := i.s.withTimeout(ctx)
	defer cancel()
	cmd := req.GetCommand()
	switch cmd.GetCmd().(type) {
	case *storepb.GroupCommand_Cas, *storepb.GroupCommand_Delete, nil:
		return nil, status.Error(codes.InvalidArgument, "GroupPropose carries switch steps only")
	case *storepb.GroupCommand_Fence:
		if cmd.GetFence().GetTs() == nil {
			ts, err := i.s.clock.Now()
			if err != nil {
				return nil, api.Internal("clock: %v", err)
			}
			cmd = proto.Clone(cmd).(*storepb.GroupCommand)
			cmd.GetFence().Ts = ts.ToProto()
		}
	}
	b, err := proto.Marshal(cmd)
	if err != nil {
		return nil, api.Internal("encode: %v", err)
	}
	v, err := i.s.propose(ctx, req.GetGroupId(), b, "the namespace group")
	if err != nil {
		return nil, err
	}
	if res, ok := v.(casResult); ok && res.err != nil {
		return nil, api.Internal("%v", res.err)
	}
	g := i.s.group(req.GetGroupId())
	if g == nil {
		return nil, status.Error(codes.NotFound, "no such group here")
	}
	return &storepb.GroupProposeResponse{State: g.State()}, nil
}

// GroupStatus reads a group's switch state linearizably.
func (i *internalService) GroupStatus(ctx context.Context, req *storepb.GroupStatusRequest) (*storepb.GroupStatusResponse, error) {
	ctx, cancel := i.s.withTimeout(ctx)
	defer cancel()
	if err := i.s.readIndex(ctx, req.GetGroupId(), "the namespace group"); err != nil {
		return nil, err
	}
	g := i.s.group(req.GetGroupId())
	if g == nil {
		return nil, status.Error(codes.NotFound, "no such group here")
	}
	return &storepb.GroupStatusResponse{State: g.State()}, nil
}
