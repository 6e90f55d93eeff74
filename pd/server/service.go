package server

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// The pdpb.PD service. GetMembers and WatchNamespaces are served by any
// member from etcd. Everything else is carried out by the leader, because it
// writes or because it needs the stores' heartbeats, which only the leader
// holds: another member forwards the request to it, once.

// requestTimeout bounds each etcd operation a request makes, so that a member
// cut off from the quorum answers Unavailable instead of hanging.
const requestTimeout = 5 * time.Second

// forwardedKey marks a request a member forwarded to the leader; the
// receiver serves it or fails, it never forwards it again.
const forwardedKey = "rdb-pd-forwarded-by"

// leaderOnly runs local on this member if it leads, or forwards the request
// to the leader.
func leaderOnly[Req, Resp any](ctx context.Context, s *Server, req Req,
	local func(context.Context, *leadership, Req) (Resp, error),
	forward func(pdpb.PDClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	var zero Resp
	if err := s.checkReady(); err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if l := s.currentLeadership(); l != nil {
		return local(ctx, l, req)
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		return zero, errNotLeader
	}
	leader := s.Leader()
	if leader == nil || leader.GetId() == s.member.GetId() {
		return zero, errNoLeader
	}
	cli, err := s.fwd.client(leader)
	if err != nil {
		return zero, errForward(leader.GetName(), err.Error())
	}
	resp, err := forward(cli, metadata.AppendToOutgoingContext(ctx, forwardedKey, s.member.GetName()), req)
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return zero, errForward(leader.GetName(), st.Message())
	}
	return resp, err
}

func (s *Server) checkReady() error {
	if s.ctx.Err() != nil {
		return errShuttingDown
	}
	if !s.ready.Load() {
		return errNotReady
	}
	return nil
}

// GetMembers lists the etcd members and says which one is the PD leader.
func (s *Server) GetMembers(ctx context.Context, _ *pdpb.GetMembersRequest) (*pdpb.GetMembersResponse, error) {
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	list, err := s.client.MemberList(ctx)
	if err != nil {
		return nil, etcdError(ctx, "list members", err)
	}
	leader := s.Leader()
	resp := &pdpb.GetMembersResponse{}
	for _, m := range list.Members {
		pm := &pdpb.Member{
			Name:       m.Name,
			Id:         m.ID,
			ClientUrls: m.ClientURLs,
			PeerUrls:   m.PeerURLs,
			IsLeader:   leader != nil && leader.GetId() == m.ID,
		}
		resp.Members = append(resp.Members, pm)
		if pm.IsLeader {
			resp.Leader = pm
		}
	}
	return resp, nil
}

// RegisterStore records a store's address and returns every store.
func (s *Server) RegisterStore(ctx context.Context, req *pdpb.RegisterStoreRequest) (*pdpb.RegisterStoreResponse, error) {
	if err := checkStore(req.GetStore()); err != nil {
		return nil, err
	}
	if err := checkStoreCaller(ctx, req.GetStore().GetId()); err != nil {
		return nil, err
	}
	return leaderOnly(ctx, s, req, s.registerStore, pdpb.PDClient.RegisterStore)
}

func (s *Server) registerStore(ctx context.Context, l *leadership, req *pdpb.RegisterStoreRequest) (*pdpb.RegisterStoreResponse, error) {
	if err := s.putStore(ctx, l, req.GetStore()); err != nil {
		return nil, err
	}
	return &pdpb.RegisterStoreResponse{Stores: s.stores.infos(), ClusterId: s.ClusterID()}, nil
}

// StoreHeartbeat records a store's liveness and what it has applied, and
// returns every store. A heartbeat with an address registers the store (or
// its new address) if needed.
func (s *Server) StoreHeartbeat(ctx context.Context, req *pdpb.StoreHeartbeatRequest) (*pdpb.StoreHeartbeatResponse, error) {
	if req.GetStoreId() == 0 {
		return nil, errInvalidStore("store_id must not be 0")
	}
	if err := checkStoreCaller(ctx, req.GetStoreId()); err != nil {
		return nil, err
	}
	if req.GetAddr() != "" {
		if err := checkStore(&storepb.StoreInfo{Id: req.GetStoreId(), Addr: req.GetAddr()}); err != nil {
			return nil, err
		}
	}
	return leaderOnly(ctx, s, req, s.storeHeartbeat, pdpb.PDClient.StoreHeartbeat)
}

func (s *Server) storeHeartbeat(ctx context.Context, l *leadership, req *pdpb.StoreHeartbeatRequest) (*pdpb.StoreHeartbeatResponse, error) {
	info, ok := s.stores.info(req.GetStoreId())
	if ok && info.GetState() == StoreRemoved {
		return nil, errStoreRemoved(req.GetStoreId())
	}
	if !ok || (req.GetAddr() != "" && req.GetAddr() != info.GetAddr()) {
		if req.GetAddr() == "" {
			return nil, errStoreNotRegistered(req.GetStoreId())
		}
		if err := s.putStore(ctx, l, &storepb.StoreInfo{Id: req.GetStoreId(), Addr: req.GetAddr()}); err != nil {
			return nil, err
		}
	}
	applied := s.stores.heartbeat(req, time.Now())
	return &pdpb.StoreHeartbeatResponse{
		FullReportWanted: !applied,
		Stores:           s.stores.infos(), ClusterId: s.ClusterID(),
		TransferLeaders:    s.place.takeTransfers(req.GetStoreId()),
		MaxStoreDownTimeMs: s.cfg.MaxStoreDownTime.Milliseconds(),
	}, nil
}

// ListStores returns every registered store with its last heartbeat.
func (s *Server) ListStores(ctx context.Context, req *pdpb.ListStoresRequest) (*pdpb.ListStoresResponse, error) {
	return leaderOnly(ctx, s, req, func(context.Context, *leadership, *pdpb.ListStoresRequest) (*pdpb.ListStoresResponse, error) {
		return &pdpb.ListStoresResponse{Stores: s.storeStatuses()}, nil
	}, pdpb.PDClient.ListStores)
}

// GetNamespace returns one namespace with its rollout status, creating it in
// the default mode if asked to.
func (s *Server) GetNamespace(ctx context.Context, req *pdpb.GetNamespaceRequest) (*pdpb.GetNamespaceResponse, error) {
	if err := checkName(req.GetName()); err != nil {
		return nil, err
	}
	return leaderOnly(ctx, s, req, func(ctx context.Context, l *leadership, req *pdpb.GetNamespaceRequest) (*pdpb.GetNamespaceResponse, error) {
		st, err := s.namespaceStatusOf(ctx, l, req.GetName(), req.GetCreate())
		if err != nil {
			return nil, err
		}
		return &pdpb.GetNamespaceResponse{Namespace: st}, nil
	}, pdpb.PDClient.GetNamespace)
}

func (s *Server) namespaceStatusOf(ctx context.Context, l *leadership, name string, create bool) (*pdpb.NamespaceStatus, error) {
	var rec *storepb.NamespaceRecord
	var err error
	if create {
		// One read, not two: the update reads the row and leaves one
		// that exists as it is.
		rec, _, err = s.updateNamespace(ctx, l, name, createDefaultFunc)
	} else {
		rec, err = s.readNamespace(ctx, name)
	}
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, errNamespaceNotFound(name)
	}
	now := time.Now()
	views := map[uint64]*groupView{}
	if v := s.stores.groupView(rec.GetGroupId(), now); v != nil {
		views[rec.GetGroupId()] = v
	}
	p := newPlanner(s.stores.states(now), nil, views, s.cfg.ReplicationFactor, 0)
	return s.placementStatus(s.stores.rollout(rec, now), p, views), nil
}

// ListNamespaces returns every namespace with its rollout status.
func (s *Server) ListNamespaces(ctx context.Context, req *pdpb.ListNamespacesRequest) (*pdpb.ListNamespacesResponse, error) {
	return leaderOnly(ctx, s, req, func(ctx context.Context, _ *leadership, _ *pdpb.ListNamespacesRequest) (*pdpb.ListNamespacesResponse, error) {
		recs, rev, err := s.readTable(ctx)
		if err != nil {
			return nil, err
		}
		return &pdpb.ListNamespacesResponse{Namespaces: s.namespaceStatuses(recs), Revision: uint64(rev)}, nil
	}, pdpb.PDClient.ListNamespaces)
}

// namespaceStatuses is the rollout status of each of recs.
func (s *Server) namespaceStatuses(recs []*storepb.NamespaceRecord) []*pdpb.NamespaceStatus {
	now := time.Now()
	views := s.stores.groupViews(now)
	p := newPlanner(s.stores.states(now), nil, views, s.cfg.ReplicationFactor, 0)
	list := make([]*pdpb.NamespaceStatus, len(recs))
	for i, rec := range recs {
		list[i] = s.placementStatus(s.stores.rollout(rec, now), p, views)
	}
	return list
}

// SetNamespaceMode sets a namespace's mode (see setModeFunc for the rules).
func (s *Server) SetNamespaceMode(ctx context.Context, req *pdpb.SetNamespaceModeRequest) (*pdpb.SetNamespaceModeResponse, error) {
	if err := checkName(req.GetName()); err != nil {
		return nil, err
	}
	if err := checkMode(req.GetMode()); err != nil {
		return nil, err
	}
	return leaderOnly(ctx, s, req, func(ctx context.Context, l *leadership, req *pdpb.SetNamespaceModeRequest) (*pdpb.SetNamespaceModeResponse, error) {
		rec, changed, err := s.updateNamespace(ctx, l, req.GetName(), setModeFunc(req))
		if err != nil {
			return nil, err
		}
		return &pdpb.SetNamespaceModeResponse{Record: rec, Changed: changed}, nil
	}, pdpb.PDClient.SetNamespaceMode)
}

func checkStore(info *storepb.StoreInfo) error {
	if info == nil {
		return errInvalidStore("store is missing")
	}
	if info.GetId() == 0 {
		return errInvalidStore("id must not be 0")
	}
	if _, port, err := net.SplitHostPort(info.GetAddr()); err != nil || port == "" {
		return errInvalidStore(fmt.Sprintf("addr %q is not host:port", info.GetAddr()))
	}
	return nil
}

// putStore registers a store (or its new address) under term l. A store
// being removed stays so; a removed store is refused.
func (s *Server) putStore(ctx context.Context, l *leadership, info *storepb.StoreInfo) error {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	cur, ok := s.stores.info(info.GetId())
	if ok && cur.GetState() == StoreRemoved {
		return errStoreRemoved(info.GetId())
	}
	info = &storepb.StoreInfo{Id: info.GetId(), Addr: info.GetAddr(), State: cur.GetState()}
	if ok && proto.Equal(cur, info) {
		s.stores.register(cur, time.Now())
		return nil
	}
	return s.writeStoreLocked(ctx, l, info)
}

// writeStore writes a store's row as it is given (its state included).
func (s *Server) writeStore(ctx context.Context, l *leadership, info *storepb.StoreInfo) error {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	return s.writeStoreLocked(ctx, l, info)
}

func (s *Server) writeStoreLocked(ctx context.Context, l *leadership, info *storepb.StoreInfo) error {
	val, err := proto.Marshal(info)
	if err != nil {
		return internalError("encode store: %v", err)
	}
	resp, err := s.client.Txn(ctx).If(s.fence(l)...).
		Then(clientv3.OpPut(storeKey(info.GetId()), string(val))).
		Else(clientv3.OpGet(leaderKey)).Commit()
	if err != nil {
		return etcdError(ctx, "register store", err)
	}
	if !resp.Succeeded {
		s.stillLeader(l, resp.Responses[0].GetResponseRange().GetKvs())
		return errLostLeader
	}
	s.stores.register(proto.Clone(info).(*storepb.StoreInfo), time.Now())
	return nil
}

// loadStores reloads the registered stores from etcd into the tracker.
func (s *Server) loadStores(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, storePrefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	infos := make([]*storepb.StoreInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		info, err := decodeStore(string(kv.Key), kv.Value)
		if err != nil {
			return err
		}
		infos = append(infos, info)
	}
	s.stores.reset(infos, time.Now())
	return nil
}

func decodeStore(key string, value []byte) (*storepb.StoreInfo, error) {
	info := &storepb.StoreInfo{}
	if err := proto.Unmarshal(value, info); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	if key != storeKey(info.GetId()) {
		return nil, fmt.Errorf("decode %s: the record is of store %s", key, strconv.FormatUint(info.GetId(), 10))
	}
	return info, nil
}
