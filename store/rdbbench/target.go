package rdbbench

// What a workload loads: the few calls it makes, each one request, behind
// a small interface with two implementations — rdb's gRPC API (rdbTarget)
// and etcd's client (etcdTarget).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
)

// Modes a workload needs its namespace in.
const (
	modeStrong   = "strong"
	modeEventual = "eventual"
)

// KV is one key and its value.
type KV struct{ Key, Value string }

// Target is one client of the cluster under load, bound to one namespace.
// A run opens --conns of them and spreads its clients over them. A call
// returns an error only when the request failed: a CAS mismatch and a key
// not found are answers.
type Target interface {
	// SetMode puts the namespace in mode ("strong" or "eventual") if it is
	// not, and returns once this target's endpoint serves it in that mode.
	SetMode(ctx context.Context, mode string) error
	// Cas writes value if the key's version is expected (0: the key must
	// not exist). It returns whether it wrote and the key's version: the
	// new one, or on a mismatch the current one.
	Cas(ctx context.Context, key, value string, expected uint64) (ok bool, version uint64, err error)
	// Get is a linearizable read.
	Get(ctx context.Context, key string) (found bool, err error)
	RawPut(ctx context.Context, key, value string) error
	// RawGet is a read that may be stale (one replica's).
	RawGet(ctx context.Context, key string) (found bool, err error)
	// RawBatchPut writes every pair in one request.
	RawBatchPut(ctx context.Context, pairs []KV) error
	Close() error
}

// rdbTarget calls one rdb store over one gRPC connection.
type rdbTarget struct {
	endpoint  string
	namespace string
	conn      *grpc.ClientConn
	cas       kvrpc.KvCasClient
	raw       kvrpc.KvRawClient
	modes     raftpb.RaftServiceClient
}

func dialRDB(endpoint, namespace string, creds credentials.TransportCredentials) (*rdbTarget, error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	return &rdbTarget{
		endpoint: endpoint, namespace: namespace, conn: conn,
		cas: kvrpc.NewKvCasClient(conn), raw: kvrpc.NewKvRawClient(conn), modes: raftpb.NewRaftServiceClient(conn),
	}, nil
}

func (t *rdbTarget) Cas(ctx context.Context, key, value string, expected uint64) (bool, uint64, error) {
	r, err := t.cas.CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: t.namespace, Key: key, Value: value, ExpectedVersion: expected})
	if err != nil {
		return false, 0, err
	}
	return r.GetSuccess(), r.GetVersion(), nil
}

func (t *rdbTarget) Get(ctx context.Context, key string) (bool, error) {
	r, err := t.cas.Get(ctx, &kvrpc.GetRequest{Namespace: t.namespace, Key: key})
	return r.GetFound(), err
}

func (t *rdbTarget) RawPut(ctx context.Context, key, value string) error {
	_, err := t.raw.RawPut(ctx, &kvrpc.RawPutRequest{Namespace: t.namespace, Key: key, Value: value})
	return err
}

func (t *rdbTarget) RawGet(ctx context.Context, key string) (bool, error) {
	r, err := t.raw.RawGet(ctx, &kvrpc.RawGetRequest{Namespace: t.namespace, Key: key})
	return r.GetFound(), err
}

func (t *rdbTarget) RawBatchPut(ctx context.Context, pairs []KV) error {
	req := &kvrpc.RawBatchPutRequest{Namespace: t.namespace, Pairs: make([]*kvrpc.RawKv, len(pairs))}
	for i, p := range pairs {
		req.Pairs[i] = &kvrpc.RawKv{Key: p.Key, Value: p.Value}
	}
	_, err := t.raw.RawBatchPut(ctx, req)
	return err
}

// SetMode asks for the mode (a no-op when the namespace has it already),
// then waits until the store says the namespace serves it: active, and
// for a strong namespace with a leader. With TLS, changing a mode needs an
// admin certificate; a client's is enough when the mode is right already.
func (t *rdbTarget) SetMode(ctx context.Context, mode string) error {
	for {
		_, err := t.modes.UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: t.namespace, Mode: mode})
		if err == nil || status.Code(err) == codes.PermissionDenied {
			break
		}
		if !retryable(err) {
			return fmt.Errorf("set namespace %s to %s on %s: %w", t.namespace, mode, t.endpoint, err)
		}
		if err := pause(ctx, 100*time.Millisecond, err); err != nil {
			return fmt.Errorf("set namespace %s to %s on %s: %w", t.namespace, mode, t.endpoint, err)
		}
	}
	for {
		m, err := t.modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: t.namespace})
		switch {
		case err != nil && !retryable(err):
			return fmt.Errorf("read namespace %s's mode on %s: %w", t.namespace, t.endpoint, err)
		case err != nil:
		case m.GetMode() != mode && m.GetState() == "active":
			return fmt.Errorf("namespace %s is %s, this workload needs it %s: set it with an admin certificate (pdctl namespace set %s %s, in PD mode)",
				t.namespace, m.GetMode(), mode, t.namespace, mode)
		case m.GetMode() != mode:
			err = fmt.Errorf("namespace %s is %s (%s)", t.namespace, m.GetMode(), m.GetState())
		case m.GetState() != "active":
			err = fmt.Errorf("namespace %s is %s", t.namespace, m.GetState())
		case mode == modeStrong && m.GetLeader() == 0:
			err = fmt.Errorf("namespace %s has no leader yet", t.namespace)
		default:
			return nil
		}
		if err := pause(ctx, 50*time.Millisecond, err); err != nil {
			return fmt.Errorf("wait for namespace %s to be %s on %s: %w", t.namespace, mode, t.endpoint, err)
		}
	}
}

func (t *rdbTarget) Close() error { return t.conn.Close() }

// retryable reports whether a request that failed with err may succeed
// later: the cluster is starting, electing or switching.
func retryable(err error) bool {
	switch errorCode(err) {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded:
		return true
	}
	return false
}

// pause waits d, or returns ctx's error with last if ctx ends first.
func pause(ctx context.Context, d time.Duration, last error) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w (the last attempt: %v)", ctx.Err(), last)
	case <-t.C:
		return nil
	}
}

// errorCode is the gRPC code of err: of its status, of an etcd client
// error, or of a context's end.
func errorCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	var coded interface{ Code() codes.Code }
	if errors.As(err, &coded) {
		return coded.Code()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}

// splitEndpoints parses a comma-separated list of host:port.
func splitEndpoints(s string) ([]string, error) {
	out, err := splitList(s)
	if err != nil {
		return nil, errors.New("no endpoints: give --endpoints host:port (comma-separated)")
	}
	for _, e := range out {
		if strings.Contains(e, "://") || !strings.Contains(e, ":") {
			return nil, fmt.Errorf("endpoint %q: want host:port", e)
		}
	}
	return out, nil
}
