package store

// RaftService: the namespace -> mode table as clients see it.

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/namespace"
)

type modeService struct {
	raftpb.UnimplementedRaftServiceServer
	s *Store
}

// namespaceState is whether this store has carried out its row.
func (s *Store) namespaceState(rec *storepb.NamespaceRecord) namespace.State {
	return namespace.StateOf(rec, s.groups.State(rec.GetGroupId()))
}

func (s *Store) modeRow(rec *storepb.NamespaceRecord) *raftpb.NamespaceMode {
	return &raftpb.NamespaceMode{
		Namespace:   rec.GetName(),
		Mode:        rec.GetMode(),
		FromDefault: proto.Bool(rec.GetFromDefault()),
		Version:     rec.GetVersion(),
		State:       string(s.namespaceState(rec)),
		Leader:      s.groupLeader(rec),
	}
}

func (s *Store) groupLeader(rec *storepb.NamespaceRecord) uint64 {
	if rec.GetGroupId() == 0 {
		return 0
	}
	st, _ := s.raft.Status(rec.GetGroupId())
	return st.Leader
}

func (m *modeService) GetMode(ctx context.Context, req *raftpb.GetModeRequest) (*raftpb.GetModeResponse, error) {
	if err := api.ValidateNamespace(req.GetNamespace()); err != nil {
		return nil, err
	}
	ctx, cancel := m.s.withTimeout(ctx)
	defer cancel()
	rec, err := m.s.namespace(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	row := m.s.modeRow(rec)
	return &raftpb.GetModeResponse{
		Namespace: row.Namespace, Mode: row.Mode, FromDefault: row.FromDefault, Version: row.Version, State: row.State,
		Leader: row.Leader,
	}, nil
}

func (m *modeService) ListNamespaceModes(ctx context.Context, _ *raftpb.ListNamespaceModesRequest) (*raftpb.ListNamespaceModesResponse, error) {
	out := &raftpb.ListNamespaceModesResponse{}
	for _, rec := range m.s.table.List() {
		out.Namespaces = append(out.Namespaces, m.s.modeRow(rec))
	}
	return out, nil
}

func (m *modeService) UpdateNamespaceMode(ctx context.Context, req *raftpb.UpdateNamespaceModeRequest) (*raftpb.UpdateNamespaceModeResponse, error) {
	if err := api.ValidateNamespace(req.GetNamespace()); err != nil {
		return nil, err
	}
	if _, err := namespace.ParseMode(req.GetMode()); err != nil {
		return nil, err
	}
	ctx, cancel := m.s.withTimeout(ctx)
	defer cancel()
	rec, changed, err := m.s.auth.SetMode(ctx, req.GetNamespace(), req.GetMode(), req.GetForce())
	if err != nil {
		return nil, err
	}
	// Answer once this store has applied the change too, so that a
	// ListNamespaceModes sent here next shows it.
	if local, err := m.s.table.WaitVersion(ctx, rec.GetName(), rec.GetVersion()); err == nil {
		rec = local
	}
	row := m.s.modeRow(rec)
	return &raftpb.UpdateNamespaceModeResponse{
		Namespace: row.Namespace, Mode: row.Mode, FromDefault: row.FromDefault, Version: row.Version, State: row.State,
		Changed: proto.Bool(changed),
	}, nil
}
