package client

// The calls of eventual namespaces (kvrpc.KvRaw): any store takes them;
// writes are stamped with the store's hybrid logical clock and the last
// writer wins.

import (
	"context"
	"iter"

	"google.golang.org/grpc"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store/api"
)

// Timestamp is the hybrid logical clock reading a store stamped a write
// with; timestamps compare by WallTime, then Logical, then StoreID.
type Timestamp struct {
	WallTime int64
	Logical  uint32
	StoreID  uint64
}

func timestampOf(h *kvrpc.HLC) Timestamp {
	return Timestamp{WallTime: h.GetWallTime(), Logical: h.GetLogical(), StoreID: h.GetStoreId()}
}

// BatchWrite is the answer of a Raw batch write: the timestamps of its
// first and last pair (those between are consecutive).
type BatchWrite struct {
	First, Last Timestamp
}

// RawPut writes key in eventual namespace ns. It is a write: a RawPut whose
// outcome is unknown is not sent again (ErrOutcomeUnknown), since a second
// one would be stamped anew and could overwrite a later write.
func (c *Client) RawPut(ctx context.Context, ns, key, value string) (Timestamp, error) {
	o := &op{name: "RawPut", ns: ns, write: true, kv: true}
	if err := api.ValidateWrite(ns, key, value); err != nil {
		return Timestamp{}, invalid(o, err)
	}
	req := &kvrpc.RawPutRequest{Namespace: ns, Key: key, Value: value}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.RawPutResponse, error) {
		return st.raw.RawPut(ctx, req, opts...)
	})
	return timestampOf(resp.GetTimestamp()), err
}

// RawGet reads key from one store's replica of eventual namespace ns (on
// a strong namespace, a possibly stale read of that store's state).
func (c *Client) RawGet(ctx context.Context, ns, key string) (value string, found bool, err error) {
	o := &op{name: "RawGet", ns: ns, kv: true}
	if err := api.ValidateRead(ns, key); err != nil {
		return "", false, invalid(o, err)
	}
	req := &kvrpc.RawGetRequest{Namespace: ns, Key: key}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.RawGetResponse, error) {
		return st.raw.RawGet(ctx, req, opts...)
	})
	return resp.GetValue(), resp.GetFound(), err
}

// RawDelete deletes key from eventual namespace ns (a tombstone, stamped
// like a write, and not sent again when its outcome is unknown).
func (c *Client) RawDelete(ctx context.Context, ns, key string) (Timestamp, error) {
	o := &op{name: "RawDelete", ns: ns, write: true, kv: true}
	if err := api.ValidateRead(ns, key); err != nil {
		return Timestamp{}, invalid(o, err)
	}
	req := &kvrpc.RawDeleteRequest{Namespace: ns, Key: key}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.RawDeleteResponse, error) {
		return st.raw.RawDelete(ctx, req, opts...)
	})
	return timestampOf(resp.GetTimestamp()), err
}

// RawScan returns the keys of eventual namespace ns in [start, end) (end
// "": to the end) in key order, page by page from one store's replica at
// a time, each page continuing after the last key of the one before. The
// iteration stops at the first error, which it yields.
func (c *Client) RawScan(ctx context.Context, ns, start, end string, opts ...ScanOption) iter.Seq2[KV, error] {
	o := &op{name: "RawScan", ns: ns, kv: true}
	return pages(ctx, c, o, start, end, opts, func(ctx context.Context, st *stubs, start string, limit uint32, copts ...grpc.CallOption) ([]KV, bool, error) {
		resp, err := st.raw.RawScan(ctx, &kvrpc.RawScanRequest{Namespace: ns, StartKey: start, EndKey: end, Limit: limit}, copts...)
		if err != nil {
			return nil, false, err
		}
		return rawKVs(resp.GetKvs()), resp.GetMore(), nil
	})
}

// RawBatchPut writes every pair (their Version is ignored) to eventual
// namespace ns as one write: the store that takes it applies all of it or
// none and replicates it as one unit. A key given twice keeps its last
// value. It is not sent again when its outcome is unknown.
func (c *Client) RawBatchPut(ctx context.Context, ns string, pairs []KV) (BatchWrite, error) {
	o := &op{name: "RawBatchPut", ns: ns, write: true, kv: true}
	req := &kvrpc.RawBatchPutRequest{Namespace: ns, Pairs: make([]*kvrpc.RawKv, len(pairs))}
	if err := api.ValidateNamespace(ns); err != nil {
		return BatchWrite{}, invalid(o, err)
	}
	for i, p := range pairs {
		if err := api.ValidateKey(p.Key); err != nil {
			return BatchWrite{}, invalid(o, err)
		}
		if err := api.ValidateValue(p.Value); err != nil {
			return BatchWrite{}, invalid(o, err)
		}
		req.Pairs[i] = &kvrpc.RawKv{Key: p.Key, Value: p.Value}
	}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.RawBatchPutResponse, error) {
		return st.raw.RawBatchPut(ctx, req, opts...)
	})
	return BatchWrite{First: timestampOf(resp.GetTimestamp()), Last: timestampOf(resp.GetLastTimestamp())}, err
}

// RawBatchGet reads many keys from one store's replica of eventual
// namespace ns. It returns the keys found, in the order asked (a key asked
// twice, twice).
func (c *Client) RawBatchGet(ctx context.Context, ns string, keys []string) ([]KV, error) {
	o := &op{name: "RawBatchGet", ns: ns, kv: true}
	if err := validateKeys(ns, keys); err != nil {
		return nil, invalid(o, err)
	}
	req := &kvrpc.RawBatchGetRequest{Namespace: ns, Keys: keys}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.RawBatchGetResponse, error) {
		return st.raw.RawBatchGet(ctx, req, opts...)
	})
	if err != nil {
		return nil, err
	}
	return rawKVs(resp.GetPairs()), nil
}

// RawBatchDelete deletes many keys of eventual namespace ns as one write,
// as RawBatchPut writes.
func (c *Client) RawBatchDelete(ctx context.Context, ns string, keys []string) (BatchWrite, error) {
	o := &op{name: "RawBatchDelete", ns: ns, write: true, kv: true}
	if err := validateKeys(ns, keys); err != nil {
		return BatchWrite{}, invalid(o, err)
	}
	req := &kvrpc.RawBatchDeleteRequest{Namespace: ns, Keys: keys}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.RawBatchDeleteResponse, error) {
		return st.raw.RawBatchDelete(ctx, req, opts...)
	})
	return BatchWrite{First: timestampOf(resp.GetTimestamp()), Last: timestampOf(resp.GetLastTimestamp())}, err
}

func rawKVs(in []*kvrpc.RawKv) []KV {
	out := make([]KV, len(in))
	for i, kv := range in {
		out[i] = KV{Key: kv.GetKey(), Value: kv.GetValue()}
	}
	return out
}
