// Package client is the Go client of an rdb cluster. It is created from a
// list of store addresses and gives a typed call for every API of the
// stores: CompareAndSwap, Get, Delete, Scan and BatchGet on strong
// namespaces; RawPut, RawGet, RawDelete, RawScan and the Raw batch calls on
// eventual ones; and the namespace modes.
//
//	c, err := client.New([]string{"10.0.0.1:20160", "10.0.0.2:20160", "10.0.0.3:20160"})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	res, err := c.CompareAndSwap(ctx, "default", "greeting", "hello", 0)
//	switch {
//	case errors.Is(err, client.ErrOutcomeUnknown):
//		// The write may have been applied: read the key before writing again.
//	case err != nil:
//		return err
//	case !res.Success:
//		// The key exists: res.Version and res.Value are its current ones.
//	}
//	for kv, err := range c.Scan(ctx, "default", "user/", client.PrefixEnd("user/")) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(kv.Key, kv.Value, kv.Version)
//	}
//
// # Retries
//
// A call is retried, with jittered exponential backoff (RetryPolicy) and
// within its deadline, only when a retry is safe: the store said nothing
// was applied (an Unavailable answer with reason NOT_APPLIED: no leader or
// no quorum yet, the store stopping), a mode switch is in progress
// (Aborted), no connection to the store could be made (the request never
// left the client: the next store is tried at once), or the call only
// reads. A write that was sent and whose outcome is not known (the store
// says OUTCOME_UNKNOWN, the connection broke, the deadline passed while it
// was in flight) is never sent again: it fails with ErrOutcomeUnknown.
// RawPut, RawDelete and the Raw batch writes count as writes: the store
// stamps each with a new timestamp, so sending one again could overwrite a
// later write of another client.
//
// # Failover and leader routing
//
// Calls any store can serve go to the endpoints in turn. A store that
// cannot be reached is passed over for a short while (WithDownTime). The
// strong calls go straight to the namespace's leader once the client knows
// it: a store names the leader in the rdb-leader response metadata, and the
// client remembers it per namespace (WithLeaderCacheSize), connecting to
// it even if it is not one of the endpoints, and forgets it when a call to
// it fails in a way that says it may have moved. Without a known leader
// the store that takes the call passes it on to the leader itself.
package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// maxMessage is the largest answer the client takes (a store sends at most
// this much).
const maxMessage = 64 << 20

// Client is a client of an rdb cluster; it is safe for concurrent use.
type Client struct {
	opts    options
	dial    []grpc.DialOption
	pool    *pool
	leaders *leaders
	log     *zap.Logger
	closed  atomic.Bool
}

// New returns a client of the stores at endpoints (host:port each; any
// store of the cluster will do, more than one for failover). It connects
// to each on first use.
func New(endpoints []string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	o.retry = o.retry.withDefaults()
	addrs, err := checkEndpoints(endpoints)
	if err != nil {
		return nil, err
	}
	creds := o.creds
	if o.tlsFiles.Enabled() {
		if creds != nil {
			return nil, errors.New("TLS is given twice: use WithTLS or WithTLSFiles, not both")
		}
		if err := o.tlsFiles.Check(""); err != nil {
			return nil, err
		}
		if creds, err = o.tlsFiles.ClientCredentials(); err != nil {
			return nil, err
		}
	}
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	c := &Client{
		opts: o,
		dial: append([]grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			// A store that comes back is reconnected within a second.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: o.dialTimeout,
			}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage)),
		}, o.dialOptions...),
		pool:    newPool(addrs),
		leaders: newLeaders(o.leaderCacheSize),
		log:     o.logger,
	}
	return c, nil
}

// Close closes every connection. Calls in flight end; a write among them
// fails with ErrOutcomeUnknown, later calls with ErrClosed.
func (c *Client) Close() error {
	c.closed.Store(true)
	return c.pool.close()
}

// Endpoints returns the store addresses the client was given.
func (c *Client) Endpoints() []string {
	out := make([]string, len(c.pool.endpoints))
	for i, s := range c.pool.endpoints {
		out[i] = s.addr
	}
	return out
}

// Leader returns the address of the store the client believes leads ns,
// where its strong calls go; false if it knows none.
func (c *Client) Leader(ns string) (string, bool) { return c.leaders.get(ns) }

// op describes a call for the retry loop.
type op struct {
	name string // the RPC
	ns   string
	// write: the call changes data, so an attempt that may have reached a
	// store is not repeated.
	write bool
	// strong: the call is served by the namespace's leader.
	strong bool
	// kv: a KvCas or KvRaw call (FailedPrecondition means the wrong mode).
	kv bool
}

// rpc is one attempt of a call on one store.
type rpc[T any] func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (T, error)

// call runs fn, retrying and failing over as the package comment says.
func call[T any](ctx context.Context, c *Client, o *op, fn rpc[T]) (T, error) {
	var zero T
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	policy := c.opts.retry
	var avoid *store
	waits := 0
	for n := 1; ; n++ {
		if c.closed.Load() {
			return zero, newError(o, "", n-1, closedStatus, ErrClosed)
		}
		if err := ctxErr(ctx); err != nil && n == 1 {
			// Over before it started: nothing is sent.
			return zero, newError(o, "", 0, status.FromContextError(err).Err(), ctxKinds(ctx)...)
		}
		s, viaLeader := c.route(o, avoid)
		resp, v, err := attempt(ctx, c, o, s, viaLeader, fn)
		if err == nil {
			return resp, nil
		}
		switch v {
		case final:
			if err == closedStatus {
				return zero, newError(o, s.addr, n, err, ErrClosed)
			}
			return zero, newError(o, s.addr, n, err, kindOf(err, o.kv))
		case unknown:
			return zero, newError(o, s.addr, n, err, ErrOutcomeUnknown, ctxErr(ctx))
		}
		if ctxErr(ctx) != nil {
			return zero, newError(o, s.addr, n, err, ctxKinds(ctx)...)
		}
		if n >= policy.MaxAttempts {
			return zero, newError(o, s.addr, n, err, ErrUnavailable)
		}
		avoid = s
		if v == failover {
			s.markDown(c.opts.downTime)
			c.log.Debug("store unreachable; trying another", zap.String("op", o.name), zap.String("store", s.addr), zap.Error(err))
			if c.pool.anyUp(s) {
				continue
			}
		}
		wait := backoffWait(policy, waits)
		waits++
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return zero, newError(o, s.addr, n, err, ErrUnavailable, context.DeadlineExceeded)
		}
		c.log.Debug("not applied; retrying", zap.String("op", o.name), zap.String("namespace", o.ns),
			zap.String("store", s.addr), zap.Duration("wait", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return zero, newError(o, s.addr, n, err, ctxKinds(ctx)...)
		case <-time.After(wait):
		}
	}
}

// attempt sends one attempt of a call to store s and sorts its failure.
func attempt[T any](ctx context.Context, c *Client, o *op, s *store, viaLeader bool, fn rpc[T]) (T, verdict, error) {
	var zero T
	st, err := s.stubs(c.dial)
	if err != nil {
		return zero, final, err
	}
	if !ready(ctx, st.conn, c.opts.dialTimeout) {
		if viaLeader {
			c.leaders.drop(o.ns, s.addr)
		}
		if ctx.Err() != nil {
			return zero, retry, status.FromContextError(ctx.Err()).Err()
		}
		return zero, failover, status.Errorf(codes.Unavailable, "store %s cannot be reached: no connection (the request was not sent)", s.addr)
	}
	actx, cancel := attemptContext(ctx, c.opts.attemptTimeout, o.write)
	defer cancel()
	var resp T
	if o.strong && c.opts.leaderRouting {
		// The leader comes in the header, or in the trailer of an answer
		// that has no header (an error).
		var hdr, trl metadata.MD
		resp, err = fn(actx, st, grpc.Header(&hdr), grpc.Trailer(&trl))
		c.learn(o, s, viaLeader, err, hdr, trl)
	} else {
		resp, err = fn(actx, st)
	}
	if err != nil {
		return zero, judge(err, o.write), err
	}
	s.markUp()
	return resp, final, nil
}

// route picks the store for an attempt: the namespace's leader for a
// strong call, if the client knows it and it did not just fail the call;
// otherwise the next endpoint in turn.
func (c *Client) route(o *op, avoid *store) (*store, bool) {
	if o.strong && c.opts.leaderRouting {
		if addr, ok := c.leaders.get(o.ns); ok {
			if s := c.pool.get(addr); s != nil && s != avoid && !s.down(time.Now()) {
				return s, true
			}
		}
	}
	return c.pool.any(avoid), false
}

// learn updates the leader of a strong call's namespace from the store's
// answer: the leader it names, if it names one; otherwise a failed call to
// the leader the client had in mind makes it forget that leader.
func (c *Client) learn(o *op, s *store, viaLeader bool, err error, mds ...metadata.MD) {
	if addr, ok := leaderOf(mds...); ok {
		if c.leaders.put(o.ns, addr) {
			c.log.Debug("namespace leader learned", zap.String("namespace", o.ns), zap.String("leader", addr), zap.String("from", s.addr))
		}
		return
	}
	if !viaLeader || err == nil {
		return
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.FailedPrecondition:
		c.leaders.drop(o.ns, s.addr)
	}
}

// callContext gives a call without a deadline the call timeout.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.opts.callTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.callTimeout)
}

// attemptContext bounds one attempt of a read by the attempt timeout (and
// any attempt, through ctx, by what is left of the call; gRPC sends the
// deadline to the store). A write gets all that is left: once sent, it
// would not be retried, so cutting it short would only make its outcome
// unknown sooner.
func attemptContext(ctx context.Context, timeout time.Duration, write bool) (context.Context, context.CancelFunc) {
	if timeout <= 0 || write {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}

// ctxErr is ctx's error, or DeadlineExceeded once its deadline has passed
// (gRPC may report the deadline a moment before the context does).
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// backoffWait is the wait before retry n+1: exponential from the initial
// backoff, bounded, and drawn between half and all of its bound.
func backoffWait(p RetryPolicy, n int) time.Duration {
	d := p.MaxBackoff
	if n < 30 {
		if e := p.InitialBackoff << n; e > 0 && e < d {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}
