package store

// Who may call what on a store, when the cluster runs with TLS (package
// security): clients and admins use the KV APIs and read modes; only an
// admin changes a mode; only stores (and PD, which drives switches) call
// the internal service. A peer may speak only as the store its
// certificate names (checked where messages name their sender). With or
// without certificates, an internal call must name this store's cluster
// (checkCluster).

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/clusterid"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/security"
)

var storePolicy = security.Policy{
	"/raftpb.RaftService/GetMode":             {security.Client, security.Admin, security.Store, security.PD},
	"/raftpb.RaftService/ListNamespaceModes":  {security.Client, security.Admin, security.Store, security.PD},
	"/raftpb.RaftService/UpdateNamespaceMode": {security.Admin},
	"/kvrpc.KvCas/":                           {security.Client, security.Admin, security.Store},
	"/kvrpc.KvRaw/":                           {security.Client, security.Admin, security.Store},
	"/rdb.storepb.StoreInternal/":             {security.Store},
	// The placement driver's leader drives mode switches.
	"/rdb.storepb.StoreInternal/SwitchStatus":    {security.Store, security.PD},
	"/rdb.storepb.StoreInternal/Dump":            {security.Store, security.PD},
	"/rdb.storepb.StoreInternal/GroupPropose":    {security.Store, security.PD},
	"/rdb.storepb.StoreInternal/GroupStatus":     {security.Store, security.PD},
	"/grpc.health.v1.Health/":                    security.Everyone,
	"/grpc.reflection.v1.ServerReflection/":      security.Everyone,
	"/grpc.reflection.v1alpha.ServerReflection/": security.Everyone,
}

// The streams of peer messages check that every message comes from the
// store the caller's certificate names.

type raftStream struct {
	storepb.StoreInternal_RaftServer
}

func (s raftStream) Recv() (*storepb.RaftBatch, error) {
	b, err := s.StoreInternal_RaftServer.Recv()
	if err == nil {
		err = security.RequireStore(s.Context(), b.GetFromStore())
	}
	return b, err
}

type snapshotStream struct {
	storepb.StoreInternal_SnapshotServer
}

func (s snapshotStream) Recv() (*storepb.SnapshotChunk, error) {
	c, err := s.StoreInternal_SnapshotServer.Recv()
	if err == nil {
		err = security.RequireStore(s.Context(), c.GetFromStore())
	}
	return c, err
}

type replicateStream struct {
	storepb.StoreInternal_ReplicateServer
}

func (s replicateStream) Recv() (*storepb.ReplicateBatch, error) {
	b, err := s.StoreInternal_ReplicateServer.Recv()
	if err == nil {
		err = security.RequireStore(s.Context(), b.GetFromStore())
	}
	return b, err
}

// internalPrefix is the store-to-store service, whose calls must name this
// store's cluster.
const internalPrefix = "/rdb.storepb.StoreInternal/"

// checkCluster refuses an internal call that names another cluster than
// this store's (a store of another cluster, or a wiped one that started a
// new cluster), or none: only a joining store, which does not know the
// cluster yet, calls without one. A store that does not know its own
// cluster yet (before its join or its first registration with PD) accepts
// every call.
func (s *Store) checkCluster(ctx context.Context, method string) error {
	if !strings.HasPrefix(method, internalPrefix) {
		return nil
	}
	return clusterid.CheckIncoming(ctx, s.cluster.ID(), fmt.Sprintf("store %d", s.cfg.StoreID),
		"a store of another cluster, or a wiped one", method == internalPrefix+"Join")
}

func (s *Store) clusterUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.checkCluster(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Store) clusterStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.checkCluster(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// limitClientMessages refuses a client API request larger than
// maxClientMessage: the port takes peer messages of up to maxPeerMessage,
// and a client has no business sending one that large. A batch past its
// limits is refused first, for what it is (InvalidArgument), before it is
// forwarded anywhere.
func limitClientMessages(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/rdb.storepb.") {
		return handler(ctx, req)
	}
	if err := validateBatch(req); err != nil {
		return nil, err
	}
	if m, ok := req.(proto.Message); ok {
		if n := proto.Size(m); n > maxClientMessage {
			return nil, status.Errorf(codes.ResourceExhausted, "request of %d bytes: a client request may carry at most %d", n, maxClientMessage)
		}
	}
	return handler(ctx, req)
}

// validateCommand is the Raft engine's check of a command that arrives
// from another store (a forwarded proposal, or an entry to append): it
// must be one this store's state machines can apply, or every replica
// would stop on it.
func (s *Store) validateCommand(group uint64, cmd []byte) error {
	if group == keys.MetaGroupID {
		var c storepb.MetaCommand
		if err := proto.Unmarshal(cmd, &c); err != nil {
			return err
		}
		if c.GetCmd() == nil {
			return errors.New("meta command without a command")
		}
		return nil
	}
	var c storepb.GroupCommand
	if err := proto.Unmarshal(cmd, &c); err != nil {
		return err
	}
	switch x := c.GetCmd().(type) {
	case *storepb.GroupCommand_Cas:
		return checkKV(x.Cas.GetKey(), x.Cas.GetValue())
	case *storepb.GroupCommand_Delete:
		return checkKV(x.Delete.GetKey(), nil)
	case *storepb.GroupCommand_LoadBatch:
		for _, r := range x.LoadBatch.GetRecords() {
			if err := api.CheckRecord(r); err != nil {
				return err
			}
		}
	}
	if c.GetCmd() == nil {
		return errors.New("group command without a command")
	}
	return nil
}

func checkKV(key, value []byte) error {
	if len(key) == 0 || len(key) > api.MaxKeyBytes || len(value) > api.MaxValueBytes {
		return fmt.Errorf("key of %d bytes, value of %d bytes: out of bounds", len(key), len(value))
	}
	return nil
}
