package server

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// The placement calls of pdpb.PD: replica counts, store removal, and the
// cluster's placement status.

// SetNamespaceReplicas sets how many replicas a namespace has; the
// scheduler adds or removes them.
func (s *Server) SetNamespaceReplicas(ctx context.Context, req *pdpb.SetNamespaceReplicasRequest) (*pdpb.SetNamespaceReplicasResponse, error) {
	if err := checkName(req.GetName()); err != nil {
		return nil, err
	}
	if n := req.GetReplicas(); n < 1 || n > MaxReplicas {
		return nil, errInvalidReplicas(fmt.Sprintf("a namespace has 1 to %d replicas, not %d", MaxReplicas, n))
	}
	return leaderOnly(ctx, s, req, func(ctx context.Context, l *leadership, req *pdpb.SetNamespaceReplicasRequest) (*pdpb.SetNamespaceReplicasResponse, error) {
		rec, changed, err := s.updateNamespace(ctx, l, req.GetName(), func(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
			if cur == nil {
				return nil, errNamespaceNotFound(req.GetName())
			}
			if err := checkReplicaCount(cur.GetMode(), int(req.GetReplicas())); err != nil {
				return nil, err
			}
			if cur.GetReplicationFactor() == req.GetReplicas() {
				return nil, ErrNoChange
			}
			cur.ReplicationFactor = req.GetReplicas()
			return cur, nil
		})
		if err != nil {
			return nil, err
		}
		return &pdpb.SetNamespaceReplicasResponse{Record: rec, Changed: changed}, nil
	}, pdpb.PDClient.SetNamespaceReplicas)
}

// checkReplicaCount: a strong namespace's group needs an odd number of
// voters (an even one tolerates no more failures and needs a larger
// quorum).
func checkReplicaCount(mode string, n int) error {
	if mode == ModeStrong && n > 0 && n%2 == 0 {
		return errInvalidReplicas(fmt.Sprintf("a strong namespace has an odd number of replicas, not %d", n))
	}
	return nil
}

// RemoveStore starts draining a store. It is idempotent: removing a store
// that is being removed answers its status again.
func (s *Server) RemoveStore(ctx context.Context, req *pdpb.RemoveStoreRequest) (*pdpb.RemoveStoreResponse, error) {
	if req.GetId() == 0 {
		return nil, errInvalidStore("id must not be 0")
	}
	return leaderOnly(ctx, s, req, func(ctx context.Context, l *leadership, req *pdpb.RemoveStoreRequest) (*pdpb.RemoveStoreResponse, error) {
		info, ok := s.stores.info(req.GetId())
		if !ok {
			return nil, errStoreNotFound(req.GetId())
		}
		if info.GetState() == "" {
			next := &storepb.StoreInfo{Id: info.GetId(), Addr: info.GetAddr(), State: StoreRemoving}
			if err := s.writeStore(ctx, l, next); err != nil {
				return nil, err
			}
			s.lg.Info("removing store", zap.Uint64("store", req.GetId()))
		}
		for _, st := range s.storeStatuses() {
			if st.GetId() == req.GetId() {
				return &pdpb.RemoveStoreResponse{Store: st}, nil
			}
		}
		return nil, status.Errorf(codes.Internal, "store %d vanished", req.GetId())
	}, pdpb.PDClient.RemoveStore)
}

// GetClusterStatus reports what placement has left to do.
func (s *Server) GetClusterStatus(ctx context.Context, req *pdpb.GetClusterStatusRequest) (*pdpb.GetClusterStatusResponse, error) {
	return leaderOnly(ctx, s, req, func(ctx context.Context, _ *leadership, _ *pdpb.GetClusterStatusRequest) (*pdpb.GetClusterStatusResponse, error) {
		recs, _, err := s.readTable(ctx)
		if err != nil {
			return nil, err
		}
		list := s.namespaceStatuses(recs)
		out := &pdpb.GetClusterStatusResponse{Namespaces: uint32(len(list)), ReplicationFactor: uint32(s.cfg.ReplicationFactor)}
		for _, st := range s.stores.states(time.Now()) {
			if st.GetState() == StoreUp {
				out.StoresUp++
			}
		}
		for _, ns := range list {
			if ns.GetUnderReplicated() {
				out.UnderReplicated = append(out.UnderReplicated, ns)
			}
			if ns.GetMoving() {
				out.Moving = append(out.Moving, ns)
			}
		}
		return out, nil
	}, pdpb.PDClient.GetClusterStatus)
}

// storeStatuses is every store's status with the replica and leader counts
// of the scheduler's last round.
func (s *Server) storeStatuses() []*pdpb.StoreStatus {
	list := s.stores.statuses(time.Now())
	for _, st := range list {
		r, l := s.place.counts(st.GetId())
		st.ReplicaCount, st.LeaderCount = uint32(r), uint32(l)
	}
	return list
}

// placementStatus adds a namespace's leader and whether it is under-
// replicated or moving to its rollout status.
func (s *Server) placementStatus(st *pdpb.NamespaceStatus, p *planner, views map[uint64]*groupView) *pdpb.NamespaceStatus {
	rec := st.GetRecord()
	if !placed(rec) {
		return st
	}
	v := views[rec.GetGroupId()]
	if v != nil && v.reportedByLeader {
		st.Leader = v.leader
	}
	st.UnderReplicated = p.underReplicated(rec)
	st.Moving = p.moving(rec, v)
	return st
}
