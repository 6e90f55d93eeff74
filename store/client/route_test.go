package client_test

// Leader routing, the batch calls and scans, on fake stores.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/client"
)

// Strong calls go to the leader a store names, even one the client was
// not given; raw calls do not; a leader that fails the call is forgotten.
func TestRoutesStrongCallsToTheLeader(t *testing.T) {
	var leaderDown atomic.Bool
	var leader *fake
	leader = startFake(t, func(ctx context.Context, method string, req any) (any, error) {
		if leaderDown.Load() {
			return nil, api.ErrNoLeader("namespace default") // it lost the lead
		}
		sendLeader(ctx, leader.addr)
		return success(method), nil
	})
	follower := startFake(t, func(ctx context.Context, method string, req any) (any, error) {
		if method == "Get" || method == "CompareAndSwap" {
			if leaderDown.Load() {
				return success(method), nil // it leads now, and does not say so
			}
			sendLeader(ctx, leader.addr) // it forwarded the call
		}
		return success(method), nil
	})
	c := newClient(t, []string{follower.addr}, fastRetries())
	ctx := context.Background()

	if err := calls["Get"](ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Leader("default"); !ok || got != leader.addr {
		t.Fatalf("Leader(default) = %q, %v after the first call; want %s", got, ok, leader.addr)
	}
	for range 5 {
		if err := calls["Get"](ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := calls["CompareAndSwap"](ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if f, l := follower.count("Get")+follower.count("CompareAndSwap"), leader.count("Get")+leader.count("CompareAndSwap"); f != 1 || l != 10 {
		t.Errorf("strong calls: follower got %d, leader %d; want 1 (before the leader was known) and 10", f, l)
	}
	// Raw calls go to the endpoints.
	if err := calls["RawPut"](ctx, c); err != nil {
		t.Fatal(err)
	}
	if n := leader.count("RawPut"); n != 0 {
		t.Errorf("a raw call went to the learned leader")
	}
	// Another namespace's leader is not known.
	if _, ok := c.Leader("other"); ok {
		t.Error("a leader is known for a namespace never called")
	}

	// The leader steps down: the call goes on elsewhere and the client
	// forgets it.
	leaderDown.Store(true)
	if err := calls["CompareAndSwap"](ctx, c); err != nil {
		t.Fatalf("CAS after the leader stepped down: %v", err)
	}
	if got, ok := c.Leader("default"); ok {
		t.Errorf("Leader(default) = %q after it failed a call, want none", got)
	}

	// Routing off: every call goes to the endpoints.
	leaderDown.Store(false)
	c = newClient(t, []string{follower.addr}, client.WithLeaderRouting(false))
	before := leader.count("")
	for range 3 {
		if err := calls["Get"](ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if leader.count("") != before {
		t.Error("calls went to the leader with routing off")
	}
	if _, ok := c.Leader("default"); ok {
		t.Error("a leader was learned with routing off")
	}
}

// A leader header that is not host:port is ignored.
func TestIgnoresMalformedLeader(t *testing.T) {
	f := startFake(t, func(ctx context.Context, method string, req any) (any, error) {
		sendLeader(ctx, "not an address/")
		return success(method), nil
	})
	c := newClient(t, []string{f.addr})
	if err := calls["Get"](context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Leader("default"); ok {
		t.Errorf("Leader(default) = %q from a malformed header", got)
	}
}

// The batch calls carry their keys and values both ways. (Against a
// cluster: TestClusterBatch.)
func TestBatchCalls(t *testing.T) {
	var leader *fake
	leader = startFake(t, func(ctx context.Context, method string, req any) (any, error) {
		switch r := req.(type) {
		case *kvrpc.RawBatchPutRequest:
			if r.GetNamespace() != "logs" || len(r.GetPairs()) != 2 || r.GetPairs()[1].GetKey() != "b" || r.GetPairs()[1].GetValue() != "2" {
				return nil, status.Errorf(codes.Internal, "wrong request %v", r)
			}
			return &kvrpc.RawBatchPutResponse{Timestamp: &kvrpc.HLC{WallTime: 5, StoreId: 2}, LastTimestamp: &kvrpc.HLC{WallTime: 5, Logical: 1, StoreId: 2}}, nil
		case *kvrpc.RawBatchGetRequest:
			var out []*kvrpc.RawKv
			for _, k := range r.GetKeys() {
				if k != "missing" {
					out = append(out, &kvrpc.RawKv{Key: k, Value: "v-" + k})
				}
			}
			return &kvrpc.RawBatchGetResponse{Pairs: out}, nil
		case *kvrpc.RawBatchDeleteRequest:
			if !slices.Equal(r.GetKeys(), []string{"a", "b"}) {
				return nil, status.Errorf(codes.Internal, "wrong request %v", r)
			}
			return &kvrpc.RawBatchDeleteResponse{Timestamp: &kvrpc.HLC{WallTime: 7, StoreId: 2}, LastTimestamp: &kvrpc.HLC{WallTime: 7, Logical: 1, StoreId: 2}}, nil
		case *kvrpc.BatchGetRequest:
			sendLeader(ctx, leader.addr)
			var out []*kvrpc.VersionedKv
			for _, k := range r.GetKeys() {
				out = append(out, &kvrpc.VersionedKv{Key: k, Value: "v-" + k, Version: uint64(len(k))})
			}
			return &kvrpc.BatchGetResponse{Kvs: out}, nil
		}
		return nil, nil
	})
	c := newClient(t, []string{leader.addr})
	ctx := context.Background()

	w, err := c.RawBatchPut(ctx, "logs", []client.KV{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}})
	if err != nil || w != (client.BatchWrite{First: client.Timestamp{WallTime: 5, StoreID: 2}, Last: client.Timestamp{WallTime: 5, Logical: 1, StoreID: 2}}) {
		t.Errorf("RawBatchPut = %+v, %v", w, err)
	}
	kvs, err := c.RawBatchGet(ctx, "logs", []string{"a", "missing", "a"})
	if want := []client.KV{{Key: "a", Value: "v-a"}, {Key: "a", Value: "v-a"}}; err != nil || !slices.Equal(kvs, want) {
		t.Errorf("RawBatchGet = %+v, %v; want %+v", kvs, err, want)
	}
	w, err = c.RawBatchDelete(ctx, "logs", []string{"a", "b"})
	if err != nil || w.First.WallTime != 7 || w.Last.Logical != 1 {
		t.Errorf("RawBatchDelete = %+v, %v", w, err)
	}
	kvs, err = c.BatchGet(ctx, "default", []string{"x", "yy"})
	if want := []client.KV{{Key: "x", Value: "v-x", Version: 1}, {Key: "yy", Value: "v-yy", Version: 2}}; err != nil || !slices.Equal(kvs, want) {
		t.Errorf("BatchGet = %+v, %v; want %+v", kvs, err, want)
	}
	if got, ok := c.Leader("default"); !ok || got != leader.addr {
		t.Errorf("BatchGet did not learn the leader: %q, %v", got, ok)
	}
	// A store that does not serve batches yet says so.
	f := startFake(t, nil)
	c = newClient(t, []string{f.addr})
	if _, err := c.RawBatchPut(ctx, "logs", []client.KV{{Key: "a", Value: "1"}}); !unimplemented(err) || f.count("RawBatchPut") != 1 {
		t.Errorf("RawBatchPut on a store without batches = %v, want Unimplemented after one attempt", err)
	}
}

// pageLog records where each page of a scan started.
type pageLog struct {
	mu     sync.Mutex
	starts []string
}

func (p *pageLog) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.starts)
}

func (p *pageLog) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starts = nil
}

// rangeStore answers scans of keys from a sorted list, as a store does:
// at most limit keys from start_key, and whether more follow. Page
// failPage (counting from 1) is refused.
func rangeStore(keys []string, failPage int) (handler, *pageLog) {
	log := &pageLog{}
	return func(ctx context.Context, method string, req any) (any, error) {
		var start, end string
		var limit int
		switch r := req.(type) {
		case *kvrpc.RawScanRequest:
			start, end, limit = r.GetStartKey(), r.GetEndKey(), int(r.GetLimit())
		case *kvrpc.ScanRequest:
			start, end, limit = r.GetStartKey(), r.GetEndKey(), int(r.GetLimit())
		default:
			return nil, nil
		}
		log.mu.Lock()
		log.starts = append(log.starts, start)
		n := len(log.starts)
		log.mu.Unlock()
		if n == failPage {
			return nil, status.Error(codes.PermissionDenied, "page refused")
		}
		i := sort.SearchStrings(keys, start)
		var page []string
		for ; i < len(keys) && (end == "" || keys[i] < end) && len(page) <= limit; i++ {
			page = append(page, keys[i])
		}
		more := len(page) > limit
		if more {
			page = page[:limit]
		}
		if _, ok := req.(*kvrpc.ScanRequest); ok {
			out := &kvrpc.ScanResponse{More: more}
			for _, k := range page {
				out.Kvs = append(out.Kvs, &kvrpc.VersionedKv{Key: k, Value: "v" + k, Version: 1})
			}
			return out, nil
		}
		out := &kvrpc.RawScanResponse{More: more}
		for _, k := range page {
			out.Kvs = append(out.Kvs, &kvrpc.RawKv{Key: k, Value: "v" + k})
		}
		return out, nil
	}, log
}

func TestScanPages(t *testing.T) {
	var keys []string
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("k%02d", i))
	}
	keys = append(keys, "k05\x00", "l") // right after k05, and past the prefix
	sort.Strings(keys)
	inPrefix := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "l" })
	ctx := context.Background()

	for _, tc := range []struct {
		name      string
		opts      []client.ScanOption
		stopAfter int // 0: read to the end
		want      []string
		wantPages int
	}{
		{"pages of 7", []client.ScanOption{client.PageSize(7)}, 0, inPrefix, 4},
		{"one page", nil, 0, inPrefix, 1},
		{"page size divides", []client.ScanOption{client.PageSize(13)}, 0, inPrefix, 2},
		{"limit", []client.ScanOption{client.PageSize(7), client.Limit(10)}, 0, inPrefix[:10], 2},
		{"caller stops", []client.ScanOption{client.PageSize(7)}, 3, inPrefix[:3], 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, pages := rangeStore(keys, 0)
			f := startFake(t, h)
			c := newClient(t, []string{f.addr})
			for _, raw := range []bool{true, false} {
				pages.reset()
				seq := c.Scan(ctx, "default", "k", client.PrefixEnd("k"), tc.opts...)
				if raw {
					seq = c.RawScan(ctx, "logs", "k", client.PrefixEnd("k"), tc.opts...)
				}
				var got []string
				for kv, err := range seq {
					if err != nil {
						t.Fatal(err)
					}
					if kv.Value != "v"+kv.Key || (kv.Version != 1) == !raw {
						t.Errorf("kv %+v", kv)
					}
					got = append(got, kv.Key)
					if len(got) == tc.stopAfter {
						break
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("raw=%v: got %q, want %q", raw, got, tc.want)
				}
				if starts := pages.get(); len(starts) != tc.wantPages {
					t.Errorf("raw=%v: %d pages (from %q), want %d", raw, len(starts), starts, tc.wantPages)
				}
			}
		})
	}

	// An error ends the scan, once.
	h, _ := rangeStore(keys, 2)
	f := startFake(t, h)
	c := newClient(t, []string{f.addr})
	var got, errs int
	for _, err := range c.RawScan(ctx, "logs", "", "", client.PageSize(5)) {
		if err != nil {
			errs++
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("error %v", err)
			}
			continue
		}
		got++
	}
	if got != 5 || errs != 1 {
		t.Errorf("scan failing on its second page: %d keys and %d errors, want 5 and 1", got, errs)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a", "b"},
		{"user/", "user0"},
		{"a\x7f", "a\u0080"},
		{"é", "ê"},
		{"a\U0010FFFF", "b"},
		{"\U0010FFFF", ""},
		{"\uD7FF", "\uE000"},
		{"a\xff", "b"},
		{"a\xfe", "a\xff"},
	} {
		if got := client.PrefixEnd(tc.in); got != tc.want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Every key with the prefix is in [prefix, end), and the keys near
	// it that lack the prefix are not.
	for _, p := range []string{"a", "ab", "a\u00ff", "\u07ff", "\uffff", "x\U0010FFFF"} {
		end := client.PrefixEnd(p)
		for _, suffix := range []string{"", "\x00", "z", "\u0800", "\U0010FFFF\U0010FFFF"} {
			if k := p + suffix; k < p || (end != "" && k >= end) {
				t.Errorf("key %q is outside [%q, %q)", k, p, end)
			}
		}
		if end != "" && len(end) > 0 && end[:min(len(p), len(end))] == p {
			t.Errorf("PrefixEnd(%q) = %q has the prefix", p, end)
		}
	}
}

// errors.Is, errors.As and status.FromError see through a client error
// wrapped once more by the caller.
func TestErrorsUnwrap(t *testing.T) {
	f := startFake(t, func(ctx context.Context, method string, req any) (any, error) {
		return nil, api.ErrWrongModeForRaw("default")
	})
	c := newClient(t, []string{f.addr})
	_, err := c.RawPut(context.Background(), "default", "k", "v")
	wrapped := fmt.Errorf("saving: %w", err)
	var ce *client.Error
	if !errors.Is(wrapped, client.ErrWrongMode) || !errors.As(wrapped, &ce) || ce.Namespace != "default" || ce.Op != "RawPut" {
		t.Fatalf("error %v: want ErrWrongMode, a *client.Error of RawPut on default", wrapped)
	}
	st, ok := status.FromError(wrapped)
	if !ok || st.Code() != codes.FailedPrecondition {
		t.Errorf("status.FromError(%v) = %v, %v; want FailedPrecondition", wrapped, st, ok)
	}
	if want := `rdb: RawPut on namespace "default" at ` + f.addr + `: wrong mode for the namespace: FailedPrecondition: namespace "default" is strong`; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("message %q, want it to start with %q", err.Error(), want)
	}
	if _, err := c.CompareAndSwap(context.Background(), "default", "k", "v", 0); errors.Is(err, client.ErrOutcomeUnknown) || !errors.Is(err, client.ErrWrongMode) {
		t.Errorf("CAS = %v", err)
	}
}
