package client

// The calls of strong namespaces (kvrpc.KvCas): linearizable, through the
// namespace's Raft group, sent to its leader when the client knows it.

import (
	"context"
	"iter"

	"google.golang.org/grpc"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store/api"
)

// KV is a key and its value; Version is the key's version in a strong
// namespace (0 in an eventual one).
type KV struct {
	Key     string
	Value   string
	Version uint64
}

// CasResult is the answer of CompareAndSwap.
type CasResult struct {
	// Success: the value was written.
	Success bool
	// Version is the key's new version on success; on a mismatch its
	// current one (0: the key does not exist).
	Version uint64
	// Value is the key's current value on a mismatch.
	Value string
}

// GetResult is the answer of Get.
type GetResult struct {
	Found   bool
	Value   string
	Version uint64
}

// DeleteResult is the answer of Delete.
type DeleteResult struct {
	// Success: the key is gone (it was deleted, or did not exist and any
	// version was accepted).
	Success bool
	// Found: the key existed.
	Found bool
	// Version and Value are the key's current ones on a mismatch.
	Version uint64
	Value   string
}

// CompareAndSwap writes value to key in strong namespace ns if the key's
// version is expectedVersion (0: the key must not exist). A mismatch is an
// answer (Success false, with the current version and value), not an
// error. It is retried only when the store says nothing was applied; a
// write whose outcome is unknown fails with ErrOutcomeUnknown.
func (c *Client) CompareAndSwap(ctx context.Context, ns, key, value string, expectedVersion uint64) (CasResult, error) {
	o := &op{name: "CompareAndSwap", ns: ns, write: true, strong: true, kv: true}
	if err := api.ValidateWrite(ns, key, value); err != nil {
		return CasResult{}, invalid(o, err)
	}
	req := &kvrpc.CasRequest{Namespace: ns, Key: key, Value: value, ExpectedVersion: expectedVersion}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.CasResponse, error) {
		return st.cas.CompareAndSwap(ctx, req, opts...)
	})
	if err != nil {
		return CasResult{}, err
	}
	return CasResult{Success: resp.GetSuccess(), Version: resp.GetVersion(), Value: resp.GetValue()}, nil
}

// Get reads key in strong namespace ns, linearizably.
func (c *Client) Get(ctx context.Context, ns, key string) (GetResult, error) {
	o := &op{name: "Get", ns: ns, strong: true, kv: true}
	if err := api.ValidateRead(ns, key); err != nil {
		return GetResult{}, invalid(o, err)
	}
	req := &kvrpc.GetRequest{Namespace: ns, Key: key}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.GetResponse, error) {
		return st.cas.Get(ctx, req, opts...)
	})
	if err != nil {
		return GetResult{}, err
	}
	return GetResult{Found: resp.GetFound(), Value: resp.GetValue(), Version: resp.GetVersion()}, nil
}

// Delete removes key from strong namespace ns if its version is
// expectedVersion (0: whatever its version). Like CompareAndSwap, a
// mismatch is an answer and an unknown outcome is ErrOutcomeUnknown.
func (c *Client) Delete(ctx context.Context, ns, key string, expectedVersion uint64) (DeleteResult, error) {
	o := &op{name: "Delete", ns: ns, write: true, strong: true, kv: true}
	if err := api.ValidateRead(ns, key); err != nil {
		return DeleteResult{}, invalid(o, err)
	}
	req := &kvrpc.DeleteRequest{Namespace: ns, Key: key, ExpectedVersion: expectedVersion}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.DeleteResponse, error) {
		return st.cas.Delete(ctx, req, opts...)
	})
	if err != nil {
		return DeleteResult{}, err
	}
	return DeleteResult{Success: resp.GetSuccess(), Found: resp.GetFound(), Version: resp.GetVersion(), Value: resp.GetValue()}, nil
}

// Scan returns the keys of strong namespace ns in [start, end) (end "":
// to the end) in key order, page by page: each page is one linearizable
// read (retried like Get), and the next continues after the last key of
// the one before, so the whole is not one snapshot. The iteration stops
// at the first error, which it yields.
func (c *Client) Scan(ctx context.Context, ns, start, end string, opts ...ScanOption) iter.Seq2[KV, error] {
	o := &op{name: "Scan", ns: ns, strong: true, kv: true}
	return pages(ctx, c, o, start, end, opts, func(ctx context.Context, st *stubs, start string, limit uint32, copts ...grpc.CallOption) ([]KV, bool, error) {
		resp, err := st.cas.Scan(ctx, &kvrpc.ScanRequest{Namespace: ns, StartKey: start, EndKey: end, Limit: limit}, copts...)
		if err != nil {
			return nil, false, err
		}
		kvs := make([]KV, len(resp.GetKvs()))
		for i, kv := range resp.GetKvs() {
			kvs[i] = KV{Key: kv.GetKey(), Value: kv.GetValue(), Version: kv.GetVersion()}
		}
		return kvs, resp.GetMore(), nil
	})
}

// BatchGet reads many keys of strong namespace ns in one linearizable
// read: every key as of the same point. It returns the keys found, in the
// order asked (a key asked twice, twice).
func (c *Client) BatchGet(ctx context.Context, ns string, keys []string) ([]KV, error) {
	o := &op{name: "BatchGet", ns: ns, strong: true, kv: true}
	if err := validateKeys(ns, keys); err != nil {
		return nil, invalid(o, err)
	}
	req := &kvrpc.BatchGetRequest{Namespace: ns, Keys: keys}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*kvrpc.BatchGetResponse, error) {
		return st.cas.BatchGet(ctx, req, opts...)
	})
	if err != nil {
		return nil, err
	}
	out := make([]KV, len(resp.GetKvs()))
	for i, kv := range resp.GetKvs() {
		out[i] = KV{Key: kv.GetKey(), Value: kv.GetValue(), Version: kv.GetVersion()}
	}
	return out, nil
}

// validateKeys checks a batch's namespace and every key (the store checks
// the batch's size).
func validateKeys(ns string, keys []string) error {
	if err := api.ValidateNamespace(ns); err != nil {
		return err
	}
	for _, k := range keys {
		if err := api.ValidateKey(k); err != nil {
			return err
		}
	}
	return nil
}
