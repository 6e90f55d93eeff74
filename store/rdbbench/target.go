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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/store/security"

	rdbclient "github.com/rdb-project/rdb/store/client"
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

// rdbTarget calls the cluster through one Go client (store/client): its
// own connection to each store, strong calls routed to the namespace's
// leader once a store names it, and the client's retries of what had no
// effect. A run's errors are what the client gives up on.
type rdbTarget struct {
	namespace string
	cli       *rdbclient.Client
}

func dialRDB(endpoints []string, namespace string, tlsFiles security.Files) (*rdbTarget, error) {
	cli, err := rdbclient.New(endpoints, rdbclient.WithTLSFiles(tlsFiles))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(endpoints, ","), err)
	}
	return &rdbTarget{namespace: namespace, cli: cli}, nil
}

func (t *rdbTarget) Cas(ctx context.Context, key, value string, expected uint64) (bool, uint64, error) {
	r, err := t.cli.CompareAndSwap(ctx, t.namespace, key, value, expected)
	return r.Success, r.Version, err
}

func (t *rdbTarget) Get(ctx context.Context, key string) (bool, error) {
	r, err := t.cli.Get(ctx, t.namespace, key)
	return r.Found, err
}

func (t *rdbTarget) RawPut(ctx context.Context, key, value string) error {
	_, err := t.cli.RawPut(ctx, t.namespace, key, value)
	return err
}

func (t *rdbTarget) RawGet(ctx context.Context, key string) (bool, error) {
	_, found, err := t.cli.RawGet(ctx, t.namespace, key)
	return found, err
}

func (t *rdbTarget) RawBatchPut(ctx context.Context, pairs []KV) error {
	kvs := make([]rdbclient.KV, len(pairs))
	for i, p := range pairs {
		kvs[i] = rdbclient.KV{Key: p.Key, Value: p.Value}
	}
	_, err := t.cli.RawBatchPut(ctx, t.namespace, kvs)
	return err
}

// SetMode asks for the mode (a no-op when the namespace has it already),
// then waits until the cluster says the namespace serves it: active, and
// for a strong namespace with a leader. With TLS, changing a mode needs an
// admin certificate; a client's is enough when the mode is right already.
func (t *rdbTarget) SetMode(ctx context.Context, mode string) error {
	// set is the version of the row that set the mode: a store that has
	// not applied it yet answers with an older one (retry), and only an
	// answer at least as new can refuse the workload.
	var set uint64
	for {
		u, err := t.cli.UpdateNamespaceMode(ctx, t.namespace, mode, false)
		if err == nil || status.Code(err) == codes.PermissionDenied {
			set = u.Version
			break
		}
		if !retryable(err) {
			return fmt.Errorf("set namespace %s to %s: %w", t.namespace, mode, err)
		}
		if err := pause(ctx, 100*time.Millisecond, err); err != nil {
			return fmt.Errorf("set namespace %s to %s: %w", t.namespace, mode, err)
		}
	}
	for {
		m, err := t.cli.GetMode(ctx, t.namespace)
		switch {
		case err != nil && !retryable(err):
			return fmt.Errorf("read namespace %s's mode: %w", t.namespace, err)
		case err != nil:
		case m.Version < set:
			err = fmt.Errorf("namespace %s: version %d answered, %d set", t.namespace, m.Version, set)
		case m.Mode != mode && m.State == "active":
			return fmt.Errorf("namespace %s is %s, this workload needs it %s: set it with an admin certificate (pdctl namespace set %s %s, in PD mode)",
				t.namespace, m.Mode, mode, t.namespace, mode)
		case m.Mode != mode:
			err = fmt.Errorf("namespace %s is %s (%s)", t.namespace, m.Mode, m.State)
		case m.State != "active":
			err = fmt.Errorf("namespace %s is %s", t.namespace, m.State)
		case mode == modeStrong && m.Leader == 0:
			err = fmt.Errorf("namespace %s has no leader yet", t.namespace)
		default:
			return nil
		}
		if err := pause(ctx, 50*time.Millisecond, err); err != nil {
			return fmt.Errorf("wait for namespace %s to be %s: %w", t.namespace, mode, err)
		}
	}
}

func (t *rdbTarget) Close() error { return t.cli.Close() }

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
