// Package switchdriver runs the mode-switch driver (store/modeswitch) on
// the placement driver's leader: PD is the authority for the table, so it
// also carries out the switches the table asks for, and a new leader
// resumes any switch its predecessor left half done.
package switchdriver

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/clusterid"
	"github.com/rdb-project/rdb/store/modeswitch"
)

// Driver is a server.Driver that carries out mode switches.
type Driver struct {
	log      *zap.Logger
	interval time.Duration
}

// New returns a Driver; interval is how often it checks the table.
func New(log *zap.Logger, interval time.Duration) *Driver {
	if log == nil {
		log = zap.NewNop()
	}
	return &Driver{log: log, interval: interval}
}

// Run drives switches for one leadership term.
func (d *Driver) Run(ctx context.Context, c server.Cluster) {
	pc := &pdCluster{ctx: ctx, c: c, conns: make(map[uint64]*storeConn)}
	defer pc.close()
	d.log.Info("mode switch driver starts on this leader")
	modeswitch.New(pc, d.log, d.interval).Run(ctx)
}

// pdCluster is the switch driver's view of the cluster through PD.
type pdCluster struct {
	ctx context.Context
	c   server.Cluster

	mu    sync.Mutex
	conns map[uint64]*storeConn
}

type storeConn struct {
	addr string
	conn *grpc.ClientConn
}

// Changes names the rows changed since the last round (modeswitch.Changes).
func (p *pdCluster) Changes() ([]*storepb.NamespaceRecord, bool) { return p.c.Changes() }

func (p *pdCluster) Namespaces() []*storepb.NamespaceRecord {
	recs, _, err := p.c.Records(p.ctx)
	if err != nil {
		return nil
	}
	return recs
}

// Stores lists every registered store, up or not: a store that is down may
// hold eventual writes nobody else has, so an eventual -> strong switch
// waits for it.
func (p *pdCluster) Stores() []*storepb.StoreInfo {
	var out []*storepb.StoreInfo
	for _, st := range p.c.Stores() {
		out = append(out, &storepb.StoreInfo{Id: st.GetId(), Addr: st.GetAddr()})
	}
	return out
}

// Holders lists the stores an eventual -> strong switch of rec fences and
// merges: its replicas, the stores still handing its records over, and
// every store that has not applied the switch's row (it may still take
// raw writes as a replica of an older row). A down store is left out: PD
// replaces its replicas rather than wait for it, and writes only it had
// taken are lost, as a forced switch would lose them.
func (p *pdCluster) Holders(rec *storepb.NamespaceRecord) []*storepb.StoreInfo {
	if len(rec.GetReplicas()) == 0 {
		return p.Stores()
	}
	var out []*storepb.StoreInfo
	reports := p.c.NamespaceReports(rec.GetName())
	for _, st := range p.c.Stores() {
		if st.GetState() == server.StoreDown || st.GetState() == server.StoreRemoved {
			continue
		}
		hold := slices.Contains(rec.GetReplicas(), st.GetId()) || st.GetAppliedRevision() < rec.GetVersion() ||
			reports[st.GetId()].GetReleasing()
		if hold {
			out = append(out, &storepb.StoreInfo{Id: st.GetId(), Addr: st.GetAddr()})
		}
	}
	return out
}

// KnownState is the most advanced state any store reported for group in
// its heartbeats. Replicas apply the same log, and a state's epochs only
// grow along it, so the greatest of each is one replica's real state.
func (p *pdCluster) KnownState(group uint64) (*storepb.GroupState, bool) {
	var best *storepb.GroupState
	reports := p.c.GroupReports(group)
	for _, id := range slices.Sorted(maps.Keys(reports)) {
		s := reports[id].GetState()
		if s == nil {
			continue
		}
		if best == nil || s.GetActiveEpoch() > best.GetActiveEpoch() ||
			(s.GetActiveEpoch() == best.GetActiveEpoch() && s.GetFencedEpoch() > best.GetFencedEpoch()) {
			best = s
		}
	}
	return best, best != nil
}

func (p *pdCluster) Client(id uint64) (storepb.StoreInternalClient, error) {
	var addr string
	for _, st := range p.c.Stores() {
		if st.GetId() == id {
			addr = st.GetAddr()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if sc := p.conns[id]; sc != nil && (sc.addr == addr || addr == "") {
		return storepb.NewStoreInternalClient(sc.conn), nil
	} else if sc != nil {
		_ = sc.conn.Close()
		delete(p.conns, id)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(p.c.Credentials()),
		// Every call names PD's cluster: a store of another cluster
		// refuses it.
		grpc.WithChainUnaryInterceptor(clusterid.UnaryClientInterceptor(p.c.ClusterID)),
		grpc.WithChainStreamInterceptor(clusterid.StreamClientInterceptor(p.c.ClusterID)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		return nil, err
	}
	p.conns[id] = &storeConn{addr: addr, conn: conn}
	return storepb.NewStoreInternalClient(conn), nil
}

func (p *pdCluster) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, sc := range p.conns {
		_ = sc.conn.Close()
		delete(p.conns, id)
	}
}
