package client

import (
	"crypto/tls"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/rdb-project/rdb/store/security"
)

// Defaults of the options.
const (
	DefaultDialTimeout     = 2 * time.Second
	DefaultCallTimeout     = 10 * time.Second
	DefaultAttemptTimeout  = 5 * time.Second
	DefaultDownTime        = time.Second
	DefaultLeaderCacheSize = 4096
	DefaultMaxAttempts     = 10
	DefaultInitialBackoff  = 25 * time.Millisecond
	DefaultMaxBackoff      = time.Second
)

// RetryPolicy says how often and how soon a call that certainly had no
// effect is tried again. The waits grow exponentially from InitialBackoff
// to MaxBackoff, each drawn at random between half and all of its bound so
// that clients that failed together do not retry together. A call also
// stops at its deadline (its context's, or the call timeout).
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one call, the first included:
	// 1 never retries (0: DefaultMaxAttempts).
	MaxAttempts int
	// InitialBackoff is the bound of the first wait (0:
	// DefaultInitialBackoff).
	InitialBackoff time.Duration
	// MaxBackoff bounds every wait (0: DefaultMaxBackoff).
	MaxBackoff time.Duration
}

type options struct {
	creds           credentials.TransportCredentials
	tlsFiles        security.Files
	dialTimeout     time.Duration
	callTimeout     time.Duration
	attemptTimeout  time.Duration
	downTime        time.Duration
	retry           RetryPolicy
	leaderRouting   bool
	leaderCacheSize int
	logger          *zap.Logger
	dialOptions     []grpc.DialOption
}

func defaultOptions() options {
	return options{
		dialTimeout:     DefaultDialTimeout,
		callTimeout:     DefaultCallTimeout,
		attemptTimeout:  DefaultAttemptTimeout,
		downTime:        DefaultDownTime,
		leaderRouting:   true,
		leaderCacheSize: DefaultLeaderCacheSize,
		logger:          zap.NewNop(),
	}
}

// Option configures a Client.
type Option func(*options)

// WithTLS connects to the stores with TLS: cfg holds the client's
// certificate (a cluster with TLS requires one: CN admin to change modes,
// any other name for data) and the CA that signs the stores'. Leave
// cfg.ServerName empty to verify each store against its own address.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.creds = credentials.NewTLS(cfg.Clone()) }
}

// WithTLSFiles connects with TLS from PEM files, as the project's command
// lines name them (certificate, key and trusted CA; see package
// security). New reports files that cannot be loaded. Empty files:
// plaintext.
func WithTLSFiles(f security.Files) Option { return func(o *options) { o.tlsFiles = f } }

// WithDialTimeout bounds how long a call waits for a connection to a
// store before it counts the store unreachable and tries another
// (default DefaultDialTimeout).
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithCallTimeout is the deadline of a call, retries included, whose
// context has none (default DefaultCallTimeout; 0: none). Each page of a
// scan is a call.
func WithCallTimeout(d time.Duration) Option { return func(o *options) { o.callTimeout = d } }

// WithAttemptTimeout bounds one attempt of a read on one store (default
// DefaultAttemptTimeout; 0: the call's deadline alone): a store that does
// not answer in time is left for another. A write's attempt has the
// call's whole deadline: a write that was sent is not sent again, so
// cutting it short would only make its outcome unknown sooner.
func WithAttemptTimeout(d time.Duration) Option { return func(o *options) { o.attemptTimeout = d } }

// WithRetryPolicy sets how calls that had no effect are retried.
func WithRetryPolicy(p RetryPolicy) Option { return func(o *options) { o.retry = p } }

// WithDownTime is how long a store that could not be reached is passed
// over before calls try it again (default DefaultDownTime).
func WithDownTime(d time.Duration) Option { return func(o *options) { o.downTime = d } }

// WithLeaderRouting turns routing strong calls to their namespace's leader
// on or off (default on). Off, every call goes to any store, and a store
// that does not lead the namespace passes the call on.
func WithLeaderRouting(on bool) Option { return func(o *options) { o.leaderRouting = on } }

// WithLeaderCacheSize bounds how many namespaces' leaders the client
// remembers, least recently used first out (default
// DefaultLeaderCacheSize).
func WithLeaderCacheSize(n int) Option { return func(o *options) { o.leaderCacheSize = n } }

// WithLogger logs retries, failovers and leader changes at debug level
// (default: no logs).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithDialOptions adds gRPC dial options to every connection (after the
// client's own: interceptors, for example).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	p.MaxBackoff = max(p.MaxBackoff, p.InitialBackoff)
	return p
}
