package server

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// WatchNamespaces streams the mode table: the whole table (reload=true) when
// start_revision is 0, then every change from the revision after it, each
// response carrying the revision it brings the receiver to. A non-zero
// start_revision is the first revision the caller wants: changes are sent
// from it, inclusive (a receiver that has revision R asks for R+1; asking
// for R again is harmless, as versions are applied only when newer). When
// the revisions wanted have been compacted away, the whole table is sent
// again with reload=true. An idle stream gets a response with no records
// every few seconds that moves the revision forward.
//
// Any member serves it from etcd. The stream ends with Unavailable when this
// member loses its etcd quorum or shuts down: reconnect and resume.
func (s *Server) WatchNamespaces(req *pdpb.WatchNamespacesRequest, stream grpc.ServerStreamingServer[pdpb.WatchNamespacesResponse]) error {
	if err := s.checkReady(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	if err := s.checkStartRevision(ctx, req.GetStartRevision()); err != nil {
		return err
	}
	next := int64(req.GetStartRevision())
	if next == 0 {
		rev, err := s.sendTable(ctx, stream)
		if err != nil {
			return err
		}
		next = rev + 1
	}
	for {
		rev, err := s.streamChanges(ctx, stream, next)
		if err != nil {
			return err
		}
		next = rev + 1
	}
}

// sendTable sends the whole table with reload=true and returns its revision.
func (s *Server) sendTable(ctx context.Context, stream grpc.ServerStreamingServer[pdpb.WatchNamespacesResponse]) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	recs, rev, err := s.readTable(rctx)
	if err != nil {
		return 0, err
	}
	return rev, stream.Send(&pdpb.WatchNamespacesResponse{Records: recs, Revision: uint64(rev), Reload: true})
}

// streamChanges sends changes from revision from on, until the table must be
// sent whole again (after a compaction, or a row was deleted behind PD's
// back): it then sends it and returns its revision.
func (s *Server) streamChanges(ctx context.Context, stream grpc.ServerStreamingServer[pdpb.WatchNamespacesResponse], from int64) (int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.client.Watch(wctx, namespacePrefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify())
	for wr := range wch {
		if err := wr.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				s.lg.Info("namespace watch fell behind a compaction: sending the whole table",
					zap.Int64("from", from), zap.Int64("compacted", wr.CompactRevision))
				return s.sendTable(ctx, stream)
			}
			return 0, errWatchBroken(err.Error())
		}
		if wr.IsProgressNotify() {
			if err := stream.Send(&pdpb.WatchNamespacesResponse{Revision: uint64(wr.Header.Revision)}); err != nil {
				return 0, err
			}
			continue
		}
		// One response per revision, in revision order.
		var batch *pdpb.WatchNamespacesResponse
		flush := func() error {
			if batch == nil {
				return nil
			}
			err := stream.Send(batch)
			batch = nil
			return err
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				s.lg.Warn("a namespace row was deleted in etcd: sending the whole table", zap.ByteString("key", ev.Kv.Key))
				if err := flush(); err != nil {
					return 0, err
				}
				return s.sendTable(ctx, stream)
			}
			rec, err := decodeNamespace(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
			if err != nil {
				s.lg.Error("skipping an undecodable namespace row", zap.Error(err))
				continue
			}
			if batch != nil && batch.Revision != rec.GetVersion() {
				if err := flush(); err != nil {
					return 0, err
				}
			}
			if batch == nil {
				batch = &pdpb.WatchNamespacesResponse{Revision: rec.GetVersion(), Records: []*storepb.NamespaceRecord{}}
			}
			batch.Records = append(batch.Records, rec)
		}
		if err := flush(); err != nil {
			return 0, err
		}
	}
	if ctx.Err() != nil {
		if s.ctx.Err() != nil {
			return 0, errShuttingDown
		}
		return 0, status.FromContextError(ctx.Err()).Err()
	}
	return 0, errWatchBroken("this member lost its etcd leader")
}
