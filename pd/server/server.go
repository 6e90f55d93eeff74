// Package server is the placement driver (PD): the one authority for the
// namespace -> mode table and the store list, on embedded etcd.
//
// A PD member is an etcd member whose gRPC server also serves pdpb.PD, gRPC
// reflection and grpc.health.v1 (etcd's), so one client port serves etcd and
// PD. One member is the PD leader (see leader.go); it carries out every write
// and keeps the stores' heartbeats in memory. The table lives in etcd, one key
// per namespace, and a row's version is the etcd revision that wrote it, so
// versions are monotonic and never reused, across leaders too.
package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/proto/pdpb"
)

// Server is one PD member.
type Server struct {
	pdpb.UnimplementedPDServer

	cfg    Config
	lg     *zap.Logger
	etcd   *embed.Etcd
	client *clientv3.Client // to this member's own client URL

	// member is this member; memberValue is its leader-key value.
	member      *pdpb.Member
	memberValue []byte

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  atomic.Bool // etcd serves and the fields above are set

	// clusterID is the cluster's id once this member knows it (see
	// clusterid.go).
	clusterID atomic.Uint64

	// creds are this member's credentials as a client (of its own etcd,
	// the leader it forwards to, and the stores its driver calls).
	creds credentials.TransportCredentials

	stores  *storeTracker // valid while leader
	place   *placeState   // valid while leader
	storeMu sync.Mutex    // serialises the leader's store writes
	fwd     forwarder
	// formHint is set when a group may be waiting for its voters: the
	// formation loop reads the table only then.
	formHint atomic.Bool
	// count is the leader's running count of namespaces, for
	// --max-namespaces.
	count namespaceCount

	mu     sync.RWMutex
	leader *pdpb.Member // the PD leader as this member knows it
	lead   *leadership  // this member's current term, if leader

	closeOnce sync.Once
	killed    atomic.Bool // Kill: end without stepping down
}

// Start starts a member and returns once its etcd has joined the cluster
// (which, for a new cluster of three, needs a second member up) or ctx ends.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		var err error
		if lg, err = NewLogger(cfg.LogLevel); err != nil {
			return nil, fmt.Errorf("logger: %w", err)
		}
	}
	s := &Server{
		cfg:    cfg,
		lg:     lg.Named("pd").With(zap.String("member", cfg.Name)),
		stores: newStoreTracker(cfg.StoreDownAfter, cfg.MaxStoreDownTime),
		place:  newPlaceState(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	ecfg, err := s.etcdConfig(lg)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	s.etcd = e
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		s.Close()
		return nil, fmt.Errorf("etcd: %w", err)
	case <-e.Server.StopNotify():
		s.Close()
		return nil, errors.New("etcd stopped while starting (see its log)")
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("waiting for etcd to join the cluster: %w", ctx.Err())
	}

	s.member = &pdpb.Member{
		Name:       cfg.Name,
		Id:         uint64(e.Server.MemberID()),
		ClientUrls: cfg.AdvertiseClientURLs,
		PeerUrls:   cfg.AdvertisePeerURLs,
	}
	if s.memberValue, err = (proto.MarshalOptions{Deterministic: true}).Marshal(s.member); err != nil {
		s.Close()
		return nil, err
	}
	if s.creds, err = cfg.TLS.ClientCredentials(); err != nil {
		s.Close()
		return nil, err
	}
	s.fwd.creds = s.creds
	// PD's own calls to etcd are function calls into the member it embeds,
	// not gRPC over a socket to itself: their encoding, loopback round
	// trips and decoding were over a third of PD's CPU while namespaces
	// were created (8.9 s against 5.6 s for 10,000).
	s.client = v3client.New(e.Server)
	s.ready.Store(true)
	s.wg.Go(func() { s.runElection(s.ctx) })
	s.lg.Info("PD member started", zap.Uint64("id", s.member.Id), zap.Strings("client-urls", cfg.AdvertiseClientURLs))
	return s, nil
}

func (s *Server) etcdConfig(lg *zap.Logger) (*embed.Config, error) {
	c := s.cfg
	ecfg := embed.NewConfig()
	ecfg.Name = c.Name
	ecfg.Dir = c.DataDir
	var err error
	if ecfg.ListenClientUrls, err = parseURLs(c.ClientURLs, c.TLS.Enabled()); err != nil {
		return nil, err
	}
	if ecfg.AdvertiseClientUrls, err = parseURLs(c.AdvertiseClientURLs, c.TLS.Enabled()); err != nil {
		return nil, err
	}
	if ecfg.ListenPeerUrls, err = parseURLs(c.PeerURLs, c.PeerTLS.Enabled()); err != nil {
		return nil, err
	}
	if ecfg.AdvertisePeerUrls, err = parseURLs(c.AdvertisePeerURLs, c.PeerTLS.Enabled()); err != nil {
		return nil, err
	}
	if c.TLS.Enabled() {
		// Every client proves who it is; the policy decides what it may
		// call, etcd's own API included. The HTTP gateway would call
		// etcd on the client's behalf as itself, so it is off.
		ecfg.ClientTLSInfo = transport.TLSInfo{CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile,
			TrustedCAFile: c.TLS.TrustedCAFile, ClientCertAuth: true}
		ecfg.EnableGRPCGateway = false
	} else {
		lg.Warn("PD runs without TLS: anyone who reaches its client port can read and write the cluster's state (see --cert-file)")
	}
	if c.PeerTLS.Enabled() {
		ecfg.PeerTLSInfo = transport.TLSInfo{CertFile: c.PeerTLS.CertFile, KeyFile: c.PeerTLS.KeyFile,
			TrustedCAFile: c.PeerTLS.TrustedCAFile, ClientCertAuth: true}
	}
	ecfg.GRPCAdditionalServerOptions = []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(pdPolicy.UnaryInterceptor(), s.clusterUnary),
		grpc.ChainStreamInterceptor(pdPolicy.StreamInterceptor(), s.clusterStream),
	}
	ecfg.InitialCluster = c.InitialCluster
	ecfg.InitialClusterToken = "rdb-pd"
	ecfg.ClusterState = c.InitialClusterState
	ecfg.TickMs, ecfg.ElectionMs = c.TickMs, c.ElectionMs
	ecfg.Logger = "zap"
	ecfg.LogLevel = c.LogLevel
	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg.Named("etcd").With(zap.String("member", c.Name)))
	ecfg.WatchProgressNotifyInterval = c.WatchProgressInterval
	ecfg.EnablePprof = c.EnablePprof
	// Keep the last 10,000 revisions: a store that was away for less than
	// that resumes its watch; one away longer reloads the whole table.
	ecfg.AutoCompactionMode = embed.CompactorModeRevision
	ecfg.AutoCompactionRetention = "10000"
	ecfg.ServiceRegister = func(gs *grpc.Server) {
		pdpb.RegisterPDServer(gs, s)
		reflection.Register(gs)
	}
	return ecfg, nil
}

// Member returns this member.
func (s *Server) Member() *pdpb.Member { return s.member }

// Err reports errors that stop etcd (the member is then useless).
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the member: it steps down (revoking its lease, so another
// member leads at once), ends its watches, and stops etcd.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		if s.client != nil {
			s.client.Close()
		}
		s.fwd.close()
		if s.etcd != nil {
			s.etcd.Close()
		}
		s.lg.Info("PD member stopped")
		_ = s.lg.Sync()
	})
}

// Kill stops the member the way a crash would, for failover tests: it does
// not revoke its lease (the others take over once it expires) and its etcd
// stops without handing its Raft leadership over.
func (s *Server) Kill() {
	s.killed.Store(true)
	if s.etcd != nil {
		s.etcd.Server.HardStop()
	}
	s.Close()
}

// forwarder keeps one connection to the PD leader, for forwarding.
type forwarder struct {
	creds  credentials.TransportCredentials
	mu     sync.Mutex
	target string
	conn   *grpc.ClientConn
}

func (f *forwarder) client(leader *pdpb.Member) (pdpb.PDClient, error) {
	if len(leader.GetClientUrls()) == 0 {
		return nil, errors.New("the leader has no client URL")
	}
	target, err := pdclient.Target(leader.GetClientUrls()[0])
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil && f.target == target {
		return pdpb.NewPDClient(f.conn), nil
	}
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	conn, err := grpc.NewClient(target, pdclient.DialOptions(f.creds)...)
	if err != nil {
		return nil, err
	}
	f.conn, f.target = conn, target
	return pdpb.NewPDClient(conn), nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}
