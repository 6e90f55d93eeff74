package store

// The client KV services. KvCas goes through the namespace's Raft group;
// KvRaw writes this store's LWW replica and replicates asynchronously.
// Whether a call may be served is decided by namespace.Decide, from the
// store's row and its replica of the namespace's group.

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/namespace"
	"github.com/rdb-project/rdb/store/nsgroup"
	"github.com/rdb-project/rdb/store/raftstore"
)

type casService struct {
	kvrpc.UnimplementedKvCasServer
	s *Store
}

// decide is namespace.Decide with this store's replica of rec's group.
func (s *Store) decide(rec *storepb.NamespaceRecord, a namespace.Access) (namespace.Source, error) {
	return namespace.Decide(rec, s.groups.State(rec.GetGroupId()), a)
}

func (c *casService) CompareAndSwap(ctx context.Context, req *kvrpc.CasRequest) (*kvrpc.CasResponse, error) {
	if err := api.ValidateWrite(req.GetNamespace(), req.GetKey(), req.GetValue()); err != nil {
		return nil, err
	}
	ctx, cancel := c.s.withTimeout(ctx)
	defer cancel()
	res, err := c.s.proposeWrite(ctx, req.GetNamespace(), &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Cas{Cas: &storepb.CasCommand{
		Key: []byte(req.GetKey()), Value: []byte(req.GetValue()), ExpectedVersion: req.GetExpectedVersion(),
	}}})
	if err != nil {
		return nil, err
	}
	return &kvrpc.CasResponse{Success: proto.Bool(res.Success), Version: res.Version, Value: string(res.Value)}, nil
}

func (c *casService) Delete(ctx context.Context, req *kvrpc.DeleteRequest) (*kvrpc.DeleteResponse, error) {
	if err := api.ValidateRead(req.GetNamespace(), req.GetKey()); err != nil {
		return nil, err
	}
	ctx, cancel := c.s.withTimeout(ctx)
	defer cancel()
	res, err := c.s.proposeWrite(ctx, req.GetNamespace(), &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Delete{Delete: &storepb.DeleteCommand{
		Key: []byte(req.GetKey()), ExpectedVersion: req.GetExpectedVersion(),
	}}})
	if err != nil {
		return nil, err
	}
	out := &kvrpc.DeleteResponse{Success: proto.Bool(res.Success), Found: proto.Bool(res.Found)}
	if !res.Success {
		out.Version, out.Value = res.Version, string(res.Value)
	}
	return out, nil
}

// proposeWrite proposes a CAS or Delete to the namespace's group and turns
// the outcome into a client answer.
func (s *Store) proposeWrite(ctx context.Context, ns string, cmd *storepb.GroupCommand) (nsgroup.Result, error) {
	rec, err := s.namespace(ctx, ns)
	if err != nil {
		return nsgroup.Result{}, err
	}
	if _, err := s.decide(rec, namespace.CasWrite); err != nil {
		return nsgroup.Result{}, err
	}
	// Encoded after room for the Raft frame: a 1 MiB value is not copied
	// once more to be framed.
	b := make([]byte, raftstore.FrameSize, raftstore.FrameSize+proto.Size(cmd))
	b, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, cmd)
	if err != nil {
		return nsgroup.Result{}, api.Internal("encode command: %v", err)
	}
	v, err := s.raft.ProposeFramedRetrying(ctx, rec.GetGroupId(), b)
	if err != nil {
		return nsgroup.Result{}, raftstore.WriteError(err, "namespace "+ns)
	}
	res := v.(nsgroup.Result)
	if res.Aborted {
		return nsgroup.Result{}, api.ErrSwitching(ns, string(namespace.Strong))
	}
	return res, nil
}

// linearizable waits until this store has applied everything committed
// before the call, then returns the namespace's group if it serves strong
// reads.
func (s *Store) linearizable(ctx context.Context, ns string) (*nsgroup.Group, error) {
	rec, err := s.namespace(ctx, ns)
	if err != nil {
		return nil, err
	}
	if namespace.ModeOf(rec) != namespace.Strong {
		_, err := s.decide(rec, namespace.StrongRead)
		return nil, err
	}
	if !(unsafeReadsBuild && s.cfg.UnsafeFollowerReads) {
		if err := s.raft.ReadIndexRetrying(ctx, rec.GetGroupId()); err != nil {
			return nil, raftstore.ReadError(err, "namespace "+ns)
		}
	}
	if _, err := s.decide(rec, namespace.StrongRead); err != nil {
		return nil, err
	}
	return s.groups.Get(rec.GetGroupId()), nil
}

func (c *casService) Get(ctx context.Context, req *kvrpc.GetRequest) (*kvrpc.GetResponse, error) {
	if err := api.ValidateRead(req.GetNamespace(), req.GetKey()); err != nil {
		return nil, err
	}
	ctx, cancel := c.s.withTimeout(ctx)
	defer cancel()
	g, err := c.s.linearizable(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	ver, val, found, err := g.Read(c.s.db, []byte(req.GetKey()))
	if err != nil {
		return nil, api.Internal("read: %v", err)
	}
	return &kvrpc.GetResponse{Found: proto.Bool(found), Value: string(val), Version: ver}, nil
}

func (c *casService) Scan(ctx context.Context, req *kvrpc.ScanRequest) (*kvrpc.ScanResponse, error) {
	limit, err := api.ValidateScan(req.GetNamespace(), req.GetStartKey(), req.GetEndKey(), req.GetLimit())
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.s.withTimeout(ctx)
	defer cancel()
	g, err := c.s.linearizable(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	out := &kvrpc.ScanResponse{}
	err = g.Scan(c.s.db, []byte(req.GetStartKey()), []byte(req.GetEndKey()), limit+1, func(k []byte, ver uint64, v []byte) {
		out.Kvs = append(out.Kvs, &kvrpc.VersionedKv{Key: string(k), Value: string(v), Version: ver})
	})
	if err != nil {
		return nil, api.Internal("scan: %v", err)
	}
	if len(out.Kvs) > limit {
		out.Kvs, out.More = out.Kvs[:limit], true
	}
	return out, nil
}

type rawService struct {
	kvrpc.UnimplementedKvRawServer
	s *Store
}

// rawWrite runs a raw write under the namespace's write fence: the row
// read while holding it stays current until the write is done, so once a
// row that stops raw writes is applied, none is in flight.
func (r *rawService) rawWrite(ctx context.Context, ns string, fn func() (hlc.Timestamp, error)) (*kvrpc.HLC, error) {
	ctx, cancel := r.s.withTimeout(ctx)
	defer cancel()
	if _, err := r.s.namespace(ctx, ns); err != nil {
		return nil, err
	}
	if !r.s.auth.CaughtUp() {
		return nil, api.ErrCatchingUp
	}
	unlock := r.s.table.Writes(ns)
	defer unlock()
	rec, _ := r.s.table.Get(ns)
	if !r.s.ready(rec) {
		// Placement moved it away (or here, still filling) since the call
		// was let in: the client retries, and is forwarded.
		return nil, api.ErrNotHeld(ns, r.s.cfg.StoreID)
	}
	gs := r.s.groups.State(rec.GetGroupId())
	if _, err := namespace.Decide(rec, gs, namespace.RawWrite); err != nil {
		return nil, err
	}
	if fence := gs.GetFenceTs(); fence != nil {
		// Stamp after the conversion from strong: a write after the switch
		// must win over its key's converted record.
		if err := r.s.clock.Forward(hlc.FromProto(fence)); err != nil {
			if errors.Is(err, hlc.ErrTooFarAhead) {
				return nil, api.ErrClockBehind(ns)
			}
			return nil, api.Internal("clock: %v", err)
		}
	}
	ts, err := fn()
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// Nothing was written: the engine checks the context before it
		// writes, and a write it starts runs to the end.
		return nil, status.FromContextError(err).Err()
	case errors.Is(err, lww.ErrClosed):
		return nil, api.ErrStopping
	case err != nil:
		return nil, api.Internal("write: %v", err)
	}
	return hlcProto(ts), nil
}

func (r *rawService) RawPut(ctx context.Context, req *kvrpc.RawPutRequest) (*kvrpc.RawPutResponse, error) {
	if err := api.ValidateWrite(req.GetNamespace(), req.GetKey(), req.GetValue()); err != nil {
		return nil, err
	}
	ts, err := r.rawWrite(ctx, req.GetNamespace(), func() (hlc.Timestamp, error) {
		return r.s.lww.Put(ctx, req.GetNamespace(), []byte(req.GetKey()), []byte(req.GetValue()))
	})
	if err != nil {
		return nil, err
	}
	return &kvrpc.RawPutResponse{Timestamp: ts}, nil
}

func (r *rawService) RawDelete(ctx context.Context, req *kvrpc.RawDeleteRequest) (*kvrpc.RawDeleteResponse, error) {
	if err := api.ValidateRead(req.GetNamespace(), req.GetKey()); err != nil {
		return nil, err
	}
	ts, err := r.rawWrite(ctx, req.GetNamespace(), func() (hlc.Timestamp, error) {
		return r.s.lww.Delete(ctx, req.GetNamespace(), []byte(req.GetKey()))
	})
	if err != nil {
		return nil, err
	}
	return &kvrpc.RawDeleteResponse{Timestamp: ts}, nil
}

// rawRead decides where a raw read is served from: the LWW replica (nil),
// or, on a strong namespace, this store's applied strong state.
func (s *Store) rawRead(ctx context.Context, ns string) (*nsgroup.Group, error) {
	rec, err := s.namespace(ctx, ns)
	if err != nil {
		return nil, err
	}
	src, err := s.decide(rec, namespace.RawRead)
	if err != nil || src == namespace.FromLWW {
		return nil, err
	}
	return s.groups.Get(rec.GetGroupId()), nil
}

func (r *rawService) RawGet(ctx context.Context, req *kvrpc.RawGetRequest) (*kvrpc.RawGetResponse, error) {
	if err := api.ValidateRead(req.GetNamespace(), req.GetKey()); err != nil {
		return nil, err
	}
	ctx, cancel := r.s.withTimeout(ctx)
	defer cancel()
	g, err := r.s.rawRead(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	if g != nil {
		_, val, found, err := g.Read(r.s.db, []byte(req.GetKey()))
		if err != nil {
			return nil, api.Internal("read: %v", err)
		}
		return &kvrpc.RawGetResponse{Found: proto.Bool(found), Value: string(val)}, nil
	}
	rec, found, err := r.s.lww.Get(req.GetNamespace(), []byte(req.GetKey()))
	if err != nil {
		return nil, api.Internal("read: %v", err)
	}
	if !found {
		return &kvrpc.RawGetResponse{Found: proto.Bool(false)}, nil
	}
	return &kvrpc.RawGetResponse{Found: proto.Bool(true), Value: string(rec.GetValue())}, nil
}

func (r *rawService) RawScan(ctx context.Context, req *kvrpc.RawScanRequest) (*kvrpc.RawScanResponse, error) {
	limit, err := api.ValidateScan(req.GetNamespace(), req.GetStartKey(), req.GetEndKey(), req.GetLimit())
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.s.withTimeout(ctx)
	defer cancel()
	g, err := r.s.rawRead(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	out := &kvrpc.RawScanResponse{}
	if g != nil {
		err = g.Scan(r.s.db, []byte(req.GetStartKey()), []byte(req.GetEndKey()), limit+1, func(k []byte, _ uint64, v []byte) {
			out.Kvs = append(out.Kvs, &kvrpc.RawKv{Key: string(k), Value: string(v)})
		})
	} else {
		var recs []*storepb.LWWRecord
		recs, out.More, err = r.s.lww.Scan(req.GetNamespace(), []byte(req.GetStartKey()), []byte(req.GetEndKey()), limit)
		for _, rc := range recs {
			out.Kvs = append(out.Kvs, &kvrpc.RawKv{Key: string(rc.GetKey()), Value: string(rc.GetValue())})
		}
	}
	if err != nil {
		return nil, api.Internal("scan: %v", err)
	}
	if len(out.Kvs) > limit {
		out.Kvs, out.More = out.Kvs[:limit], true
	}
	return out, nil
}

// namespace returns a namespace's row, creating it with the default mode
// if it is new.
func (s *Store) namespace(ctx context.Context, ns string) (*storepb.NamespaceRecord, error) {
	if rec, ok := s.table.Get(ns); ok {
		return rec, nil
	}
	rec, err := s.auth.Ensure(ctx, ns)
	if err != nil {
		return nil, err
	}
	// Make sure this store's own table has the row before using it, and
	// that a new namespace's group has its replica here.
	rec, err = s.table.WaitVersion(ctx, ns, rec.GetVersion())
	if err != nil {
		return nil, status.FromContextError(err).Err()
	}
	if gid := rec.GetGroupId(); gid != 0 && slices.Contains(rec.GetGroupPeers(), s.cfg.StoreID) {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		s.groups.Wait(wctx, gid)
	}
	return rec, nil
}

// withTimeout bounds a request: by the store's RequestTimeout if the
// client gave no deadline, else by a little less than the client's. The
// store then answers before the client stops listening, and the client
// learns whether a write was applied ("not applied: retry") rather than
// only that its deadline passed.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithTimeout(ctx, s.cfg.RequestTimeout)
	}
	return context.WithDeadline(ctx, deadline.Add(-answerMargin(time.Until(deadline))))
}

// answerMargin is how long before a client's deadline the store gives up
// on a request, to leave its answer time to arrive: a tenth of the time
// left, between 5ms and 250ms.
func answerMargin(left time.Duration) time.Duration {
	return min(max(left/10, 5*time.Millisecond), 250*time.Millisecond)
}

// lwwServing tells the LWW engine whether it may replicate, repair and
// collect a namespace: it is eventual and active on this store.
func (s *Store) lwwServing(ns string) bool {
	rec, ok := s.table.Get(ns)
	return ok && s.holds(rec) && namespace.Serving(rec, s.groups.State(rec.GetGroupId()))
}
