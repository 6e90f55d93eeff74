package store

// The client KV services. KvCas goes through the namespace's Raft group;
// KvRaw writes this store's LWW replica and replicates asynchronously.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/raftstore"
)

type casService struct {
	kvrpc.UnimplementedKvCasServer
	s *Store
}

// strongGroup returns the group of a namespace that KvCas may use, or the
// error that tells the client why not.
func (s *Store) strongGroup(ctx context.Context, ns string) (*storepb.NamespaceRecord, error) {
	rec, err := s.namespace(ctx, ns)
	if err != nil {
		return nil, err
	}
	if rec.GetMode() == api.ModeStrong {
		return rec, nil
	}
	// Eventual: but until this store's replica of the group has applied
	// the fence, the switch away from strong is still under way.
	if g := s.group(rec.GetGroupId()); g != nil && isActive(g.State()) {
		return nil, api.ErrSwitching(ns, api.ModeEventual)
	}
	return nil, api.ErrWrongModeForCas(ns)
}

func (c *casService) CompareAndSwap(ctx context.Context, req *kvrpc.CasRequest) (*kvrpc.CasResponse, error) {
	if err := api.ValidateWrite(req.GetNamespace(), req.GetKey(), req.GetValue()); err != nil {
		return nil, err
	}
	ctx, cancel := c.s.withTimeout(ctx)
	defer cancel()
	rec, err := c.s.strongGroup(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	res, err := c.s.proposeGroup(ctx, rec, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Cas{Cas: &storepb.CasCommand{
		Key: []byte(req.GetKey()), Value: []byte(req.GetValue()), ExpectedVersion: req.GetExpectedVersion(), Epoch: rec.GetEpoch(),
	}}})
	if err != nil {
		return nil, err
	}
	return &kvrpc.CasResponse{Success: proto.Bool(res.success), Version: res.version, Value: string(res.value)}, nil
}

func (c *casService) Delete(ctx context.Context, req *kvrpc.DeleteRequest) (*kvrpc.DeleteResponse, error) {
	if err := api.ValidateRead(req.GetNamespace(), req.GetKey()); err != nil {
		return nil, err
	}
	ctx, cancel := c.s.withTimeout(ctx)
	defer cancel()
	rec, err := c.s.strongGroup(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	res, err := c.s.proposeGroup(ctx, rec, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Delete{Delete: &storepb.DeleteCommand{
		Key: []byte(req.GetKey()), ExpectedVersion: req.GetExpectedVersion(), Epoch: rec.GetEpoch(),
	}}})
	if err != nil {
		return nil, err
	}
	out := &kvrpc.DeleteResponse{Success: proto.Bool(res.success), Found: proto.Bool(res.found)}
	if !res.success {
		out.Version, out.Value = res.version, string(res.value)
	}
	return out, nil
}

// proposeGroup proposes a CAS or Delete and turns the outcome into a
// client answer.
func (s *Store) proposeGroup(ctx context.Context, rec *storepb.NamespaceRecord, cmd *storepb.GroupCommand) (casResult, error) {
	b, err := proto.Marshal(cmd)
	if err != nil {
		return casResult{}, api.Internal("encode command: %v", err)
	}
	v, err := s.propose(ctx, rec.GetGroupId(), b, "namespace "+rec.GetName())
	if err != nil {
		return casResult{}, err
	}
	res := v.(casResult)
	switch {
	case res.err != nil:
		return casResult{}, api.Internal("%v", res.err)
	case res.aborted:
		return casResult{}, api.ErrSwitching(rec.GetName(), api.ModeStrong)
	}
	return res, nil
}

// linearizable waits until this store has applied everything committed
// before the call, then returns the namespace's group if it is active.
func (s *Store) linearizable(ctx context.Context, ns string) (*storepb.NamespaceRecord, *nsGroup, error) {
	rec, err := s.strongGroup(ctx, ns)
	if err != nil {
		return nil, nil, err
	}
	if !(unsafeReadsBuild && s.cfg.UnsafeFollowerReads) {
		if err := s.readIndex(ctx, rec.GetGroupId(), "namespace "+ns); err != nil {
			return nil, nil, err
		}
	}
	g := s.group(rec.GetGroupId())
	if g == nil || !isActive(g.State()) {
		return nil, nil, api.ErrSwitching(ns, api.ModeStrong)
	}
	return rec, g, nil
}

func (c *casService) Get(ctx context.Context, req *kvrpc.GetRequest) (*kvrpc.GetResponse, error) {
	if err := api.ValidateRead(req.GetNamespace(), req.GetKey()); err != nil {
		return nil, err
	}
	ctx, cancel := c.s.withTimeout(ctx)
	defer cancel()
	_, g, err := c.s.linearizable(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	ver, val, found, err := g.readKey(c.s.db, []byte(req.GetKey()))
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
	_, g, err := c.s.linearizable(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	out := &kvrpc.ScanResponse{}
	err = g.scan([]byte(req.GetStartKey()), []byte(req.GetEndKey()), limit+1, func(k []byte, ver uint64, v []byte) {
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

// scan visits a group's keys in [start, end) (end empty: to the end).
func (g *nsGroup) scan(start, end []byte, limit int, fn func(k []byte, ver uint64, v []byte)) error {
	prefix := keys.StrongPrefix(g.id)
	upper := keys.PrefixEnd(prefix)
	if len(end) > 0 {
		upper = keys.StrongKey(g.id, end)
	}
	it, err := g.s.db.NewIter(&pebble.IterOptions{LowerBound: keys.StrongKey(g.id, start), UpperBound: upper})
	if err != nil {
		return err
	}
	n := 0
	for it.First(); it.Valid() && n < limit; it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		ver, val, err := decodeStrong(v)
		if err != nil {
			_ = it.Close()
			return err
		}
		fn(it.Key()[len(prefix):], ver, val)
		n++
	}
	return it.Close()
}

type rawService struct {
	kvrpc.UnimplementedKvRawServer
	s *Store
}

// rawWritable tells whether raw writes may be accepted under rec, which
// the caller read while holding the namespace's write fence.
func (s *Store) rawWritable(rec *storepb.NamespaceRecord) error {
	ns := rec.GetName()
	if rec.GetMode() == api.ModeStrong {
		if g := s.group(rec.GetGroupId()); g != nil && isActive(g.State()) {
			return api.ErrWrongModeForRaw(ns)
		}
		return api.ErrSwitching(ns, api.ModeStrong)
	}
	if rec.GetGroupId() == 0 {
		return nil // never strong
	}
	// Eventual after being strong: only once this store's replica has
	// applied the fence (and so converted the strong state).
	if g := s.group(rec.GetGroupId()); g != nil && g.State().GetFencedEpoch() >= rec.GetEpoch() {
		return nil
	}
	return api.ErrSwitching(ns, api.ModeEventual)
}

func (r *rawService) write(ctx context.Context, ns string, fn func() (hlc.Timestamp, error)) (*kvrpc.HLC, error) {
	ctx, cancel := r.s.withTimeout(ctx)
	defer cancel()
	if _, err := r.s.namespace(ctx, ns); err != nil {
		return nil, err
	}
	unlock := r.s.table.Writes(ns)
	defer unlock()
	rec, _ := r.s.table.Get(ns)
	if err := r.s.rawWritable(rec); err != nil {
		return nil, err
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
	return &kvrpc.HLC{WallTime: ts.Wall, Logical: ts.Logical, StoreId: ts.StoreID}, nil
}

func (r *rawService) RawPut(ctx context.Context, req *kvrpc.RawPutRequest) (*kvrpc.RawPutResponse, error) {
	if err := api.ValidateWrite(req.GetNamespace(), req.GetKey(), req.GetValue()); err != nil {
		return nil, err
	}
	ts, err := r.write(ctx, req.GetNamespace(), func() (hlc.Timestamp, error) {
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
	ts, err := r.write(ctx, req.GetNamespace(), func() (hlc.Timestamp, error) {
		return r.s.lww.Delete(ctx, req.GetNamespace(), []byte(req.GetKey()))
	})
	if err != nil {
		return nil, err
	}
	return &kvrpc.RawDeleteResponse{Timestamp: ts}, nil
}

// localRead decides where a raw read is served from: the LWW replica, or
// (on a strong namespace) this store's applied strong state.
func (s *Store) localRead(ctx context.Context, ns string) (*nsGroup, error) {
	rec, err := s.namespace(ctx, ns)
	if err != nil {
		return nil, err
	}
	g := s.group(rec.GetGroupId())
	if rec.GetMode() == api.ModeStrong {
		if g == nil || !isActive(g.State()) {
			return nil, api.ErrSwitching(ns, api.ModeStrong)
		}
		return g, nil
	}
	if rec.GetGroupId() != 0 && (g == nil || g.State().GetFencedEpoch() < rec.GetEpoch()) {
		return nil, api.ErrSwitching(ns, api.ModeEventual)
	}
	return nil, nil
}

func (r *rawService) RawGet(ctx context.Context, req *kvrpc.RawGetRequest) (*kvrpc.RawGetResponse, error) {
	if err := api.ValidateRead(req.GetNamespace(), req.GetKey()); err != nil {
		return nil, err
	}
	ctx, cancel := r.s.withTimeout(ctx)
	defer cancel()
	g, err := r.s.localRead(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	if g != nil {
		_, val, found, err := g.readKey(r.s.db, []byte(req.GetKey()))
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
	g, err := r.s.localRead(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	out := &kvrpc.RawScanResponse{}
	if g != nil {
		err = g.scan([]byte(req.GetStartKey()), []byte(req.GetEndKey()), limit+1, func(k []byte, _ uint64, v []byte) {
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
		return nil, err
	}
	if gid := rec.GetGroupId(); gid != 0 && slices.Contains(rec.GetGroupPeers(), s.cfg.StoreID) {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		for s.group(gid) == nil && s.backoff(wctx) {
		}
	}
	return rec, nil
}

func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// propose proposes to a group, retrying while it has no leader (a new
// group is electing one), until ctx ends.
func (s *Store) propose(ctx context.Context, group uint64, cmd []byte, what string) (any, error) {
	for {
		v, err := s.raft.Propose(ctx, group, cmd)
		if err == nil {
			return v, nil
		}
		if !retryable(err) || !s.backoff(ctx) {
			return nil, s.raftError(err, what)
		}
	}
}

// readIndex is ReadIndex with the same retries as propose.
func (s *Store) readIndex(ctx context.Context, group uint64, what string) error {
	for {
		err := s.raft.ReadIndex(ctx, group)
		if err == nil {
			return nil
		}
		if !retryable(err) || !s.backoff(ctx) {
			return s.raftError(err, what)
		}
	}
}

func retryable(err error) bool {
	return errors.Is(err, raftstore.ErrNoLeader) || errors.Is(err, raftstore.ErrGroupNotFound)
}

func (s *Store) backoff(ctx context.Context) bool {
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// raftError turns an error of the Raft engine into a client answer.
func (s *Store) raftError(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case status.Code(err) != codes.Unknown:
		return err
	case errors.Is(err, raftstore.ErrStopped):
		return api.ErrStopping
	case errors.Is(err, raftstore.ErrNoLeader), errors.Is(err, raftstore.ErrGroupNotFound):
		return api.ErrNoLeader(what)
	case errors.Is(err, context.DeadlineExceeded):
		return api.ErrTimeout(what)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	}
	return api.Internal("%s: %v", what, err)
}

// lwwServing tells the LWW engine whether it may replicate, repair and
// collect a namespace: it is eventual and active on this store.
func (s *Store) lwwServing(ns string) bool {
	rec, ok := s.table.Get(ns)
	return ok && rec.GetMode() == api.ModeEventual && s.namespaceState(rec) == api.StateActive
}

// eventualNamespaces lists the namespaces anti-entropy runs over.
func (s *Store) eventualNamespaces() []string {
	var out []string
	for _, rec := range s.table.List() {
		if rec.GetMode() == api.ModeEventual {
			out = append(out, rec.GetName())
		}
	}
	return out
}
