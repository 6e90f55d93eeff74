package client_test

// Which failures the client retries, which it returns, and as what: each
// case scripted on fake stores.

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/client"
)

func newClient(t *testing.T, endpoints []string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(endpoints, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fastRetries keeps a test's waits between retries short.
func fastRetries() client.Option {
	return client.WithRetryPolicy(client.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
}

// success is a fake store's answer to a call that goes through.
func success(method string) any {
	switch method {
	case "CompareAndSwap":
		return &kvrpc.CasResponse{Success: proto.Bool(true), Version: 1}
	case "Get":
		return &kvrpc.GetResponse{Found: proto.Bool(true), Value: "v", Version: 1}
	case "RawPut":
		return &kvrpc.RawPutResponse{Timestamp: &kvrpc.HLC{WallTime: 1, StoreId: 1}}
	case "RawBatchPut":
		return &kvrpc.RawBatchPutResponse{Timestamp: &kvrpc.HLC{WallTime: 1, StoreId: 1}, LastTimestamp: &kvrpc.HLC{WallTime: 1, Logical: 1, StoreId: 1}}
	case "RawBatchGet":
		return &kvrpc.RawBatchGetResponse{Pairs: []*kvrpc.RawKv{{Key: "a", Value: "1"}}}
	}
	return nil
}

// calls of the client, by name, with what the tests check of each.
var calls = map[string]func(ctx context.Context, c *client.Client) error{
	"CompareAndSwap": func(ctx context.Context, c *client.Client) error {
		res, err := c.CompareAndSwap(ctx, "default", "k", "v", 0)
		if err == nil && (!res.Success || res.Version != 1) {
			return errors.New("wrong answer")
		}
		return err
	},
	"Get": func(ctx context.Context, c *client.Client) error {
		res, err := c.Get(ctx, "default", "k")
		if err == nil && (res != client.GetResult{Found: true, Value: "v", Version: 1}) {
			return errors.New("wrong answer")
		}
		return err
	},
	"RawPut": func(ctx context.Context, c *client.Client) error {
		ts, err := c.RawPut(ctx, "logs", "k", "v")
		if err == nil && ts != (client.Timestamp{WallTime: 1, StoreID: 1}) {
			return errors.New("wrong answer")
		}
		return err
	},
	"RawBatchPut": func(ctx context.Context, c *client.Client) error {
		_, err := c.RawBatchPut(ctx, "logs", []client.KV{{Key: "a", Value: "1"}})
		return err
	},
	"RawBatchGet": func(ctx context.Context, c *client.Client) error {
		_, err := c.RawBatchGet(ctx, "logs", []string{"a"})
		return err
	},
}

func TestRetriesOnlyWhatIsSafe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		method    string
		answer    error // the first two attempts' answer; then success
		wantCalls int
		wantKind  error // nil: the call succeeds
	}{
		{"no leader: not applied, a write is retried", "CompareAndSwap", api.ErrNoLeader("namespace default"), 3, nil},
		{"not proposed in time: retried", "CompareAndSwap", api.ErrNotProposed("namespace default"), 3, nil},
		{"switch in progress: retried", "CompareAndSwap", api.ErrSwitching("default", "strong"), 3, nil},
		{"store stopping: a raw write is retried", "RawPut", api.ErrStopping, 3, nil},
		{"batch write not applied: retried", "RawBatchPut", api.ErrCatchingUp, 3, nil},
		{"outcome unknown: a write is not retried", "CompareAndSwap", api.ErrTimeout("namespace default"), 1, client.ErrOutcomeUnknown},
		{"stopped with the write in flight: not retried", "RawPut", api.ErrStoppedUnknown, 1, client.ErrOutcomeUnknown},
		{"outcome unknown of a batch write: not retried", "RawBatchPut", api.ErrTimeout("namespace logs"), 1, client.ErrOutcomeUnknown},
		{"unavailable without a reason: a write may have been applied", "CompareAndSwap", status.Error(codes.Unavailable, "transport is closing"), 1, client.ErrOutcomeUnknown},
		{"unavailable without a reason: a read is retried", "Get", status.Error(codes.Unavailable, "transport is closing"), 3, nil},
		{"read not confirmed: retried", "Get", api.ErrReadTimeout("namespace default"), 3, nil},
		{"batch read: retried", "RawBatchGet", status.Error(codes.Unavailable, "error reading from server: EOF"), 3, nil},
		{"wrong mode: not retried", "CompareAndSwap", api.ErrWrongModeForCas("default"), 1, client.ErrWrongMode},
		{"invalid argument: not retried", "RawPut", status.Error(codes.InvalidArgument, "value is too large"), 1, client.ErrInvalidArgument},
		{"permission denied: not retried", "Get", status.Error(codes.PermissionDenied, "no"), 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			f := startFake(t, func(ctx context.Context, method string, req any) (any, error) {
				if n.Add(1) <= 2 {
					return nil, tc.answer
				}
				return success(method), nil
			})
			c := newClient(t, []string{f.addr}, fastRetries())
			err := calls[tc.method](context.Background(), c)
			if got := f.count(tc.method); got != tc.wantCalls {
				t.Errorf("the store got %d calls, want %d", got, tc.wantCalls)
			}
			wantFinal := status.Code(tc.answer) == codes.PermissionDenied
			switch {
			case tc.wantKind == nil && !wantFinal:
				if err != nil {
					t.Fatalf("call failed: %v", err)
				}
			case err == nil:
				t.Fatalf("call succeeded, want an error")
			default:
				if tc.wantKind != nil && !errors.Is(err, tc.wantKind) {
					t.Errorf("error %v is not %v", err, tc.wantKind)
				}
				// The store's answer stays reachable.
				if got, want := status.Convert(err), status.Convert(tc.answer); got.Code() != want.Code() || got.Message() != want.Message() {
					t.Errorf("status of %v = %v, want %v", err, got, want)
				}
				if api.Reason(err) != api.Reason(tc.answer) {
					t.Errorf("reason of %v = %q, want %q", err, api.Reason(err), api.Reason(tc.answer))
				}
				var ce *client.Error
				if !errors.As(err, &ce) || ce.Op != tc.method || ce.Store != f.addr || ce.Attempts != 1 {
					t.Errorf("error %v: want a *client.Error of %s at %s after 1 attempt, got %+v", err, tc.method, f.addr, ce)
				}
				if errors.Is(err, client.ErrUnavailable) {
					t.Errorf("error %v says not applied", err)
				}
			}
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	f := startFake(t, func(ctx context.Context, method string, req any) (any, error) {
		return nil, api.ErrNoLeader("namespace default")
	})
	c := newClient(t, []string{f.addr}, client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond}))
	_, err := c.CompareAndSwap(context.Background(), "default", "k", "v", 0)
	if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrOutcomeUnknown) || api.Reason(err) != api.ReasonNotApplied {
		t.Fatalf("CAS = %v, want ErrUnavailable with the store's NOT_APPLIED", err)
	}
	if n := f.count("CompareAndSwap"); n != 3 {
		t.Errorf("the store got %d calls, want 3", n)
	}
}

// A write sent to a store that never answers, until the deadline: the
// outcome is unknown, and the context's error is reachable too.
func TestDeadlineWithAWriteInFlight(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	f := startFake(t, func(ctx context.Context, method string, req any) (any, error) {
		if n.Add(1) == 1 {
			<-release // a store that does not answer in time
		}
		return success(method), nil
	})
	t.Cleanup(func() { close(release) })
	c := newClient(t, []string{f.addr}, client.WithAttemptTimeout(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.CompareAndSwap(ctx, "default", "k", "v", 0)
	if !errors.Is(err, client.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("CAS = %v, want ErrOutcomeUnknown and DeadlineExceeded", err)
	}
	// The attempt timeout is for reads: the write waited for the call's
	// deadline.
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("the CAS gave up after %v, before its deadline", d)
	}

	// A read whose attempt times out goes on with another attempt.
	n.Store(0)
	c = newClient(t, []string{f.addr}, client.WithAttemptTimeout(200*time.Millisecond), fastRetries())
	if err := calls["Get"](context.Background(), c); err != nil {
		t.Fatalf("Get after a timed-out attempt: %v", err)
	}
}

// The connection breaks after the request reached the store.
func TestConnectionBrokenInFlight(t *testing.T) {
	got := make(chan *fake, 2)
	var first atomic.Bool
	stall := func(self **fake) handler {
		return func(ctx context.Context, method string, req any) (any, error) {
			if first.CompareAndSwap(false, true) {
				got <- *self
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return success(method), nil
		}
	}
	var a, b, d *fake
	a = startFake(t, stall(&a))
	b = startFake(t, stall(&b))
	d = startFake(t, stall(&d))

	// A write: its outcome is unknown, and it is not sent again.
	c := newClient(t, []string{a.addr}, fastRetries())
	errc := make(chan error, 1)
	go func() { errc <- calls["CompareAndSwap"](context.Background(), c) }()
	(<-got).srv.Stop()
	if err := <-errc; !errors.Is(err, client.ErrOutcomeUnknown) || status.Code(err) != codes.Unavailable {
		t.Fatalf("CAS over a broken connection = %v, want ErrOutcomeUnknown (Unavailable)", err)
	}
	if n := a.count("CompareAndSwap"); n != 1 {
		t.Errorf("the CAS was sent %d times, want once", n)
	}

	// A read goes on with the other store.
	first.Store(false)
	c = newClient(t, []string{b.addr, deadAddr(t), d.addr}, fastRetries())
	go func() { errc <- calls["Get"](context.Background(), c) }()
	(<-got).srv.Stop()
	if err := <-errc; err != nil {
		t.Fatalf("Get over a broken connection, with another store up: %v", err)
	}
}

func TestFailsOverUnreachableStores(t *testing.T) {
	f := startFake(t, func(ctx context.Context, method string, req any) (any, error) { return success(method), nil })
	dead := deadAddr(t)
	c := newClient(t, []string{dead, f.addr, deadAddr(t)}, fastRetries())
	for i := range 10 {
		if err := calls["CompareAndSwap"](context.Background(), c); err != nil {
			t.Fatalf("CAS %d with one store of three up: %v", i, err)
		}
	}
	if n := f.count("CompareAndSwap"); n != 10 {
		t.Errorf("the store up got %d CAS, want 10 (each once)", n)
	}

	// Nobody up: not applied, within the deadline.
	c = newClient(t, []string{dead}, fastRetries())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.CompareAndSwap(ctx, "default", "k", "v", 0)
	if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrOutcomeUnknown) || status.Code(err) != codes.Unavailable {
		t.Fatalf("CAS with no store up = %v, want ErrUnavailable", err)
	}
}

func TestContextOverBeforeTheCall(t *testing.T) {
	f := startFake(t, func(ctx context.Context, method string, req any) (any, error) { return success(method), nil })
	c := newClient(t, []string{f.addr})
	if err := calls["Get"](context.Background(), c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.CompareAndSwap(ctx, "default", "k", "v", 0)
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrOutcomeUnknown) || status.Code(err) != codes.Canceled {
		t.Errorf("CAS with a cancelled context = %v, want context.Canceled, not sent", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	_, err = c.RawPut(dctx, "logs", "k", "v")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrOutcomeUnknown) {
		t.Errorf("RawPut past its deadline = %v, want ErrUnavailable and DeadlineExceeded, not sent", err)
	}
	if n := f.count("CompareAndSwap") + f.count("RawPut"); n != 0 {
		t.Errorf("%d writes reached the store", n)
	}
}

func TestRefusedBeforeSending(t *testing.T) {
	f := startFake(t, nil)
	c := newClient(t, []string{f.addr})
	ctx := context.Background()
	_, err1 := c.CompareAndSwap(ctx, "default", "", "v", 0)
	_, err2 := c.RawPut(ctx, "Bad Name", "k", "v")
	_, err3 := c.CompareAndSwap(ctx, "default", "k", string(make([]byte, api.MaxValueBytes+1)), 0)
	_, err4 := c.BatchGet(ctx, "default", []string{"a", ""})
	var err5 error
	for _, err := range c.Scan(ctx, "default", "b", "a") {
		err5 = err
	}
	for i, err := range []error{err1, err2, err3, err4, err5} {
		var ce *client.Error
		if !errors.Is(err, client.ErrInvalidArgument) || status.Code(err) != codes.InvalidArgument || !errors.As(err, &ce) || ce.Attempts != 0 {
			t.Errorf("call %d = %v, want ErrInvalidArgument before any attempt", i+1, err)
		}
	}
	if n := f.count(""); n != 0 {
		t.Errorf("the store got %d calls, want none", n)
	}
}

func TestClosed(t *testing.T) {
	f := startFake(t, func(ctx context.Context, method string, req any) (any, error) { return success(method), nil })
	c, err := client.New([]string{f.addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := calls["Get"](context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "default", "k"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
}

func TestNewChecksEndpoints(t *testing.T) {
	for _, eps := range [][]string{nil, {" "}, {"nohost"}, {"a:b"}, {"a:0"}, {"http://a:1"}, {"a b:1"}} {
		if c, err := client.New(eps); err == nil {
			_ = c.Close()
			t.Errorf("New(%q) succeeded", eps)
		}
	}
	c, err := client.New([]string{" 127.0.0.1:1 ", "localhost:2", "[::1]:3", "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Endpoints(); len(got) != 3 {
		t.Errorf("Endpoints = %q, want the 3 distinct ones", got)
	}
}

// SplitEndpoints takes a command line's list with New's rules.
func TestSplitEndpoints(t *testing.T) {
	for _, list := range []string{"", " , ", "nohost", "127.0.0.1:1,http://a:1", "a:0"} {
		if got, err := client.SplitEndpoints(list); err == nil {
			t.Errorf("SplitEndpoints(%q) = %q, want an error", list, got)
		}
	}
	got, err := client.SplitEndpoints(" 127.0.0.1:1,,localhost:2 ,[::1]:3")
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:1", "localhost:2", "[::1]:3"}) {
		t.Fatalf("SplitEndpoints = %q, %v", got, err)
	}
}
