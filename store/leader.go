package store

// The leader hint: a strong call's answer (or error) names the Raft leader
// of its namespace in the response header leaderKey, whenever this store
// knows it, so that a client sends the next call for the namespace
// straight to the leader. A follower serves strong calls too, but through
// the leader (Raft forwards its proposals and confirms its reads there):
// one hop more, which the hint saves and rdb_forwarded_requests_total
// counts.

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/rdb-project/rdb/store/namespace"
)

// leaderKey is the response header that carries the advertised address
// (host:port) of the namespace's Raft leader.
const leaderKey = "rdb-leader"

// servedStrong runs after a strong call was answered here: it sets the
// leader hint, and counts a call that this store's replica, a follower,
// answered through the leader.
func (s *Store) servedStrong(ctx context.Context, method, ns string, err error) {
	rec, ok := s.table.Get(ns)
	if !ok || namespace.ModeOf(rec) != namespace.Strong || rec.GetGroupId() == 0 {
		return
	}
	st, ok := s.raft.Status(rec.GetGroupId())
	if !ok || st.Leader == 0 {
		return
	}
	if addr, ok := s.resolve(st.Leader); ok {
		// An error only if the headers were sent already, which a unary
		// handler never does.
		_ = grpc.SetHeader(ctx, metadata.Pairs(leaderKey, addr))
	}
	if !st.IsLeader && err == nil {
		s.fwd.count(method)
	}
}

// relayLeader passes on the leader hint of a forwarded call's answer.
func relayLeader(ctx context.Context, header metadata.MD) {
	if v := header.Get(leaderKey); len(v) > 0 {
		_ = grpc.SetHeader(ctx, metadata.Pairs(leaderKey, v[0]))
	}
}
