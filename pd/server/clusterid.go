package server

// The cluster's id: the first leader creates it in etcd (a transaction that
// only creates), every later leader and every member reads it. Stores
// persist it when they first register and name it in every call; a call
// that names another cluster is refused (a store of another cluster, or
// this PD was wiped and is a new cluster). A store's watch that starts past
// PD's revision is refused too (PD went back: restored from an older
// backup).

import (
	"context"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/store/clusterid"
)

// ensureClusterID creates the cluster's id if no leader did before, or
// reads it; a leader serves only once it has it.
func (s *Server) ensureClusterID(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	id := clusterid.New()
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(clusterIDKey), "=", 0)).
		Then(clientv3.OpPut(clusterIDKey, clusterid.String(id))).
		Else(clientv3.OpGet(clusterIDKey)).Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		s.clusterID.Store(id)
		s.lg.Info("created the cluster id", zap.String("cluster_id", clusterid.String(id)))
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) != 1 {
		return status.Errorf(codes.Internal, "%s vanished", clusterIDKey)
	}
	if id, err = clusterid.Parse(string(kvs[0].Value)); err != nil {
		return err
	}
	s.clusterID.Store(id)
	return nil
}

// ClusterID is the cluster's id as this member knows it (0: not yet: no
// leader has created it, or this member has not read it yet).
func (s *Server) ClusterID() uint64 { return s.clusterID.Load() }

// knownClusterID returns the cluster's id, reading it from etcd if this
// member has not yet (0: no leader has created it yet).
func (s *Server) knownClusterID(ctx context.Context) (uint64, error) {
	if id := s.clusterID.Load(); id != 0 {
		return id, nil
	}
	if err := s.checkReady(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, clusterIDKey)
	if err != nil {
		return 0, etcdError(ctx, "read the cluster id", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	id, err := clusterid.Parse(string(resp.Kvs[0].Value))
	if err != nil {
		return 0, internalError("%s: %v", clusterIDKey, err)
	}
	s.clusterID.Store(id)
	return id, nil
}

var errNoClusterID = status.Error(codes.Unavailable, "PD has no cluster id yet (no leader has been elected yet): retry")

// checkCluster refuses a PD call that names another cluster than PD's. A
// call that names none is served (a new store, pdctl).
func (s *Server) checkCluster(ctx context.Context, method string) error {
	if !strings.HasPrefix(method, "/pdpb.PD/") {
		return nil
	}
	if _, named, err := clusterid.Incoming(ctx); err != nil || !named {
		return err
	}
	own, err := s.knownClusterID(ctx)
	if err != nil {
		return err
	}
	if own == 0 {
		return errNoClusterID
	}
	return clusterid.CheckIncoming(ctx, own, "this PD",
		"a store of another cluster, or this PD's data was wiped (a wiped PD is a new cluster)", true)
}

func (s *Server) clusterUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.checkCluster(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) clusterStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.checkCluster(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// checkStartRevision refuses a watch that starts past PD's next revision:
// the caller applied revisions PD never had (PD was wiped, or restored
// from an older backup), and following it would take the table back.
func (s *Server) checkStartRevision(ctx context.Context, start uint64) error {
	if start == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, clusterIDKey, clientv3.WithCountOnly())
	if err != nil {
		return etcdError(ctx, "read the revision", err)
	}
	if cur := uint64(resp.Header.Revision); start > cur+1 {
		s.lg.Warn("refusing a watch from past this PD's revision", zap.Uint64("start_revision", start), zap.Uint64("revision", cur))
		return clusterid.PDBehind(start-1, cur)
	}
	return nil
}
