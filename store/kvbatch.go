package store

// The batch calls of the KV services: RawBatchPut and RawBatchDelete write
// many keys of an eventual namespace as one write (one range of timestamps,
// one synced pebble batch, pushed to the other replicas as one unit);
// RawBatchGet reads many keys of this store's replica; BatchGet reads many
// keys of a strong namespace in one linearizable read. Each is served,
// refused and forwarded as its single-key form is; all read their keys
// from one snapshot, so a batch written here is seen whole or not at all.
//
// An empty batch is not an error (as in TiKV): it is checked like any
// other (namespace, mode), writes nothing and answers no timestamps or no
// keys.

import (
	"context"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/nsgroup"
)

func (r *rawService) RawBatchPut(ctx context.Context, req *kvrpc.RawBatchPutRequest) (*kvrpc.RawBatchPutResponse, error) {
	if err := api.ValidateBatchPut(req.GetNamespace(), req.GetPairs()); err != nil {
		return nil, err
	}
	kvs := make([]lww.KV, len(req.GetPairs()))
	for i, p := range req.GetPairs() {
		kvs[i] = lww.KV{Key: []byte(p.GetKey()), Value: []byte(p.GetValue())}
	}
	first, last, err := r.rawBatchWrite(ctx, req.GetNamespace(), func() (hlc.Timestamp, hlc.Timestamp, error) {
		return r.s.lww.PutBatch(ctx, req.GetNamespace(), kvs)
	})
	if err != nil {
		return nil, err
	}
	return &kvrpc.RawBatchPutResponse{Timestamp: first, LastTimestamp: last}, nil
}

func (r *rawService) RawBatchDelete(ctx context.Context, req *kvrpc.RawBatchDeleteRequest) (*kvrpc.RawBatchDeleteResponse, error) {
	if err := api.ValidateBatchKeys(req.GetNamespace(), req.GetKeys()); err != nil {
		return nil, err
	}
	keys := byteKeys(req.GetKeys())
	first, last, err := r.rawBatchWrite(ctx, req.GetNamespace(), func() (hlc.Timestamp, hlc.Timestamp, error) {
		return r.s.lww.DeleteBatch(ctx, req.GetNamespace(), keys)
	})
	if err != nil {
		return nil, err
	}
	return &kvrpc.RawBatchDeleteResponse{Timestamp: first, LastTimestamp: last}, nil
}

// rawBatchWrite runs a batch write under the namespace's write fence
// (rawWrite), so the batch as a whole is taken under one row: all of it
// before a fence, or none of it. It returns the first and last
// timestamps, nil for an empty batch.
func (r *rawService) rawBatchWrite(ctx context.Context, ns string, write func() (first, last hlc.Timestamp, err error)) (*kvrpc.HLC, *kvrpc.HLC, error) {
	var last hlc.Timestamp
	first, err := r.rawWrite(ctx, ns, func() (hlc.Timestamp, error) {
		f, l, err := write()
		last = l
		return f, err
	})
	if err != nil || last.IsZero() {
		return nil, nil, err
	}
	return first, hlcProto(last), nil
}

func (r *rawService) RawBatchGet(ctx context.Context, req *kvrpc.RawBatchGetRequest) (*kvrpc.RawBatchGetResponse, error) {
	if err := api.ValidateBatchKeys(req.GetNamespace(), req.GetKeys()); err != nil {
		return nil, err
	}
	ctx, cancel := r.s.withTimeout(ctx)
	defer cancel()
	g, err := r.s.rawRead(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	out := &kvrpc.RawBatchGetResponse{}
	if g != nil {
		err := r.s.readKeys(g, req.GetKeys(), func(key string, _ uint64, value []byte) {
			out.Pairs = append(out.Pairs, &kvrpc.RawKv{Key: key, Value: string(value)})
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	recs, err := r.s.lww.GetMany(req.GetNamespace(), byteKeys(req.GetKeys()))
	if err != nil {
		return nil, api.Internal("read: %v", err)
	}
	for i, rec := range recs {
		if rec != nil && !rec.GetTombstone() {
			out.Pairs = append(out.Pairs, &kvrpc.RawKv{Key: req.GetKeys()[i], Value: string(rec.GetValue())})
		}
	}
	return out, nil
}

func (c *casService) BatchGet(ctx context.Context, req *kvrpc.BatchGetRequest) (*kvrpc.BatchGetResponse, error) {
	if err := api.ValidateBatchKeys(req.GetNamespace(), req.GetKeys()); err != nil {
		return nil, err
	}
	ctx, cancel := c.s.withTimeout(ctx)
	defer cancel()
	// One ReadIndex for every key, then every key from one snapshot of
	// the applied state: all as of one point after the read index.
	g, err := c.s.linearizable(ctx, req.GetNamespace())
	if err != nil {
		return nil, err
	}
	out := &kvrpc.BatchGetResponse{}
	err = c.s.readKeys(g, req.GetKeys(), func(key string, version uint64, value []byte) {
		out.Kvs = append(out.Kvs, &kvrpc.VersionedKv{Key: key, Value: string(value), Version: version})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readKeys calls found, in the order of keys, for each key the group's
// applied state holds, all read from one snapshot.
func (s *Store) readKeys(g *nsgroup.Group, keys []string, found func(key string, version uint64, value []byte)) error {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	for _, k := range keys {
		version, value, ok, err := g.Read(snap, []byte(k))
		if err != nil {
			return api.Internal("read: %v", err)
		}
		if ok {
			found(k, version, value)
		}
	}
	return nil
}

// validateBatch checks a batch request (nil for any other request).
func validateBatch(req any) error {
	switch r := req.(type) {
	case *kvrpc.RawBatchPutRequest:
		return api.ValidateBatchPut(r.GetNamespace(), r.GetPairs())
	case *kvrpc.RawBatchGetRequest:
		return api.ValidateBatchKeys(r.GetNamespace(), r.GetKeys())
	case *kvrpc.RawBatchDeleteRequest:
		return api.ValidateBatchKeys(r.GetNamespace(), r.GetKeys())
	case *kvrpc.BatchGetRequest:
		return api.ValidateBatchKeys(r.GetNamespace(), r.GetKeys())
	}
	return nil
}

func byteKeys(keys []string) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out
}

// hlcProto is a timestamp as the client API gives it.
func hlcProto(ts hlc.Timestamp) *kvrpc.HLC {
	return &kvrpc.HLC{WallTime: ts.Wall, Logical: ts.Logical, StoreId: ts.StoreID}
}
