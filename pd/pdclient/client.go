// Package pdclient is the Go client of PD. It talks to a list of PD members
// and fails over between them: a call that finds a member unavailable (down,
// starting, cut off from its quorum, or between leaders) is tried on the next
// member, round after round with a short backoff, until it succeeds, fails
// for another reason, or its context ends. Any member answers every call (a
// member that is not the leader forwards to it), so the client needs no
// notion of who leads.
//
// Retried calls are safe: SetNamespaceMode is idempotent (a retry of a write
// that went through answers changed=false), and registrations and heartbeats
// overwrite.
package pdclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/clusterid"
)

// DefaultEndpoint is where PD listens when started without flags.
const DefaultEndpoint = "127.0.0.1:2379"

// Client is a PD client; it is safe for concurrent use.
type Client struct {
	targets []string
	conns   []*grpc.ClientConn
	pd      []pdpb.PDClient
	// preferred is the member that answered last: calls start there.
	preferred atomic.Int32
	opts      options
}

type options struct {
	attemptTimeout   time.Duration
	watchIdleTimeout time.Duration
	maxBackoff       time.Duration
	creds            credentials.TransportCredentials
	clusterID        func() uint64
}

// Option configures a Client.
type Option func(*options)

// WithAttemptTimeout bounds one attempt of a call on one member (default
// 5s); the call as a whole is bounded by its context.
func WithAttemptTimeout(d time.Duration) Option { return func(o *options) { o.attemptTimeout = d } }

// WithWatchIdleTimeout sets how long a namespace watch may stay silent before
// the client reconnects (default 15s; PD sends progress every few seconds).
func WithWatchIdleTimeout(d time.Duration) Option { return func(o *options) { o.watchIdleTimeout = d } }

// WithMaxBackoff bounds the wait between two rounds over all members (default 1s).
func WithMaxBackoff(d time.Duration) Option { return func(o *options) { o.maxBackoff = d } }

// WithCredentials sets the transport credentials: TLS with the caller's
// certificate for a PD that runs with TLS (default: plaintext).
func WithCredentials(c credentials.TransportCredentials) Option {
	return func(o *options) { o.creds = c }
}

// WithClusterID names the caller's cluster in every call (gRPC metadata
// rdb-cluster-id): PD refuses the calls of a store of another cluster. id
// returns 0 while the caller does not know its cluster (a new store): the
// calls then name none.
func WithClusterID(id func() uint64) Option { return func(o *options) { o.clusterID = id } }

// New returns a client of the PD members in endpoints, a comma-separated
// list of host:port or http://host:port. It does not connect yet.
func New(endpoints string, opts ...Option) (*Client, error) {
	c := &Client{opts: options{
		attemptTimeout:   5 * time.Second,
		watchIdleTimeout: 15 * time.Second,
		maxBackoff:       time.Second,
	}}
	for _, o := range opts {
		o(&c.opts)
	}
	for _, ep := range strings.Split(endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep == "" {
			continue
		}
		target, err := Target(ep)
		if err != nil {
			c.Close()
			return nil, err
		}
		dopts := DialOptions(c.opts.creds)
		if c.opts.clusterID != nil {
			dopts = append(dopts, clusterid.DialOptions(c.opts.clusterID)...)
		}
		conn, err := grpc.NewClient(target, dopts...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("PD endpoint %q: %w", ep, err)
		}
		c.targets = append(c.targets, target)
		c.conns = append(c.conns, conn)
		c.pd = append(c.pd, pdpb.NewPDClient(conn))
	}
	if len(c.pd) == 0 {
		return nil, fmt.Errorf("no PD endpoint in %q", endpoints)
	}
	return c, nil
}

// Target turns a PD endpoint (host:port, http://host:port or
// https://host:port) into a gRPC dial target. Whether TLS is used is the
// client's credentials' business, not the scheme's.
func Target(endpoint string) (string, error) {
	ep := strings.TrimSpace(endpoint)
	if rest, ok := strings.CutPrefix(ep, "http://"); ok {
		ep = strings.TrimSuffix(rest, "/")
	} else if rest, ok := strings.CutPrefix(ep, "https://"); ok {
		ep = strings.TrimSuffix(rest, "/")
	} else if strings.Contains(ep, "://") {
		return "", fmt.Errorf("PD endpoint %q: only host:port, http://host:port or https://host:port is supported", endpoint)
	}
	if ep == "" || strings.ContainsAny(ep, "/ ") || !strings.Contains(ep, ":") {
		return "", fmt.Errorf("PD endpoint %q: want host:port", endpoint)
	}
	return ep, nil
}

// DialOptions are the gRPC options PD clients use: creds (nil:
// plaintext), quick reconnection (a member that comes back is used again
// within a second), keepalives that notice a silent peer, and room for a
// large table.
func DialOptions(creds credentials.TransportCredentials) []grpc.DialOption {
	bc := backoff.DefaultConfig
	bc.MaxDelay = time.Second
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: 2 * time.Second}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
	}
}

// Endpoints returns the members' dial targets.
func (c *Client) Endpoints() []string { return append([]string(nil), c.targets...) }

// Close closes the connections.
func (c *Client) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// retryable reports whether an attempt's failure may succeed on another
// member or later: the member is unavailable, the attempt (not the call)
// timed out, or the write lost a race it can win next time.
func retryable(ctx context.Context, err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted:
		return true
	case codes.DeadlineExceeded, codes.Canceled:
		return ctx.Err() == nil
	}
	return false
}

// call runs one RPC with failover.
func call[T any](ctx context.Context, c *Client, rpc func(context.Context, pdpb.PDClient) (T, error)) (T, error) {
	var zero T
	n := int32(len(c.pd))
	wait := 50 * time.Millisecond
	var last error
	for {
		start := c.preferred.Load()
		for i := range n {
			idx := (start + i) % n
			actx, cancel := context.WithTimeout(ctx, c.opts.attemptTimeout)
			resp, err := rpc(actx, c.pd[idx])
			cancel()
			if err == nil {
				c.preferred.Store(idx)
				return resp, nil
			}
			if !retryable(ctx, err) {
				if ctx.Err() != nil && last != nil {
					return zero, c.unreachable(ctx, last)
				}
				return zero, err
			}
			last = err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return zero, c.unreachable(ctx, last)
		}
		wait = min(2*wait, c.opts.maxBackoff)
	}
}

// unreachable is the error of a call that ran out of time with every member
// unavailable: it keeps the last member's code and says what happened.
func (c *Client) unreachable(ctx context.Context, last error) error {
	st := status.Convert(last)
	return status.Errorf(st.Code(), "no PD member at %s could serve the request before %v: last error: %s",
		strings.Join(c.targets, ","), ctx.Err(), st.Message())
}

// GetMembers lists the PD members and the leader.
func (c *Client) GetMembers(ctx context.Context) (*pdpb.GetMembersResponse, error) {
	return call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.GetMembersResponse, error) {
		return pd.GetMembers(ctx, &pdpb.GetMembersRequest{})
	})
}

// RegisterStore records a store's address and returns every store.
func (c *Client) RegisterStore(ctx context.Context, store *storepb.StoreInfo) ([]*storepb.StoreInfo, error) {
	resp, err := c.Register(ctx, store)
	return resp.GetStores(), err
}

// Register records a store's address; PD answers with every store and its
// cluster id.
func (c *Client) Register(ctx context.Context, store *storepb.StoreInfo) (*pdpb.RegisterStoreResponse, error) {
	return call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.RegisterStoreResponse, error) {
		return pd.RegisterStore(ctx, &pdpb.RegisterStoreRequest{Store: store})
	})
}

// StoreHeartbeat reports a store's liveness and what it has applied, and
// returns every store.
func (c *Client) StoreHeartbeat(ctx context.Context, req *pdpb.StoreHeartbeatRequest) (*pdpb.StoreHeartbeatResponse, error) {
	return call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.StoreHeartbeatResponse, error) {
		return pd.StoreHeartbeat(ctx, req)
	})
}

// ListStores returns every registered store with its last heartbeat.
func (c *Client) ListStores(ctx context.Context) ([]*pdpb.StoreStatus, error) {
	resp, err := call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.ListStoresResponse, error) {
		return pd.ListStores(ctx, &pdpb.ListStoresRequest{})
	})
	return resp.GetStores(), err
}

// GetNamespace returns one namespace; with create, a missing one is created
// in the default mode (strong, from_default). Without create, a missing one
// is a NotFound error.
func (c *Client) GetNamespace(ctx context.Context, name string, create bool) (*pdpb.NamespaceStatus, error) {
	resp, err := call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.GetNamespaceResponse, error) {
		return pd.GetNamespace(ctx, &pdpb.GetNamespaceRequest{Name: name, Create: create})
	})
	return resp.GetNamespace(), err
}

// ListNamespaces returns every namespace and the revision they were read at.
func (c *Client) ListNamespaces(ctx context.Context) (*pdpb.ListNamespacesResponse, error) {
	return call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.ListNamespacesResponse, error) {
		return pd.ListNamespaces(ctx, &pdpb.ListNamespacesRequest{})
	})
}

// SetNamespaceMode sets a namespace's mode. The response's record.version is
// the revision of the change (or of the row as it was, if changed is false).
func (c *Client) SetNamespaceMode(ctx context.Context, req *pdpb.SetNamespaceModeRequest) (*pdpb.SetNamespaceModeResponse, error) {
	return call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.SetNamespaceModeResponse, error) {
		return pd.SetNamespaceMode(ctx, req)
	})
}

// SetNamespaceReplicas sets how many replicas a namespace has.
func (c *Client) SetNamespaceReplicas(ctx context.Context, name string, replicas uint32) (*pdpb.SetNamespaceReplicasResponse, error) {
	return call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.SetNamespaceReplicasResponse, error) {
		return pd.SetNamespaceReplicas(ctx, &pdpb.SetNamespaceReplicasRequest{Name: name, Replicas: replicas})
	})
}

// RemoveStore starts draining a store and returns its status.
func (c *Client) RemoveStore(ctx context.Context, id uint64) (*pdpb.StoreStatus, error) {
	resp, err := call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.RemoveStoreResponse, error) {
		return pd.RemoveStore(ctx, &pdpb.RemoveStoreRequest{Id: id})
	})
	return resp.GetStore(), err
}

// GetClusterStatus reports under-replicated namespaces and moves in
// progress.
func (c *Client) GetClusterStatus(ctx context.Context) (*pdpb.GetClusterStatusResponse, error) {
	return call(ctx, c, func(ctx context.Context, pd pdpb.PDClient) (*pdpb.GetClusterStatusResponse, error) {
		return pd.GetClusterStatus(ctx, &pdpb.GetClusterStatusRequest{})
	})
}
