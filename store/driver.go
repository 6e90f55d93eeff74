package store

// In static mode the meta group's leader drives mode switches.

import (
	"context"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/modeswitch"
)

const healthServing = healthpb.HealthCheckResponse_SERVING

// storeCluster is the driver's view of the cluster from a store.
type storeCluster struct{ s *Store }

func (c storeCluster) Namespaces() []*storepb.NamespaceRecord { return c.s.table.List() }
func (c storeCluster) Stores() []*storepb.StoreInfo           { return c.s.auth.Stores() }
func (c storeCluster) Client(id uint64) (storepb.StoreInternalClient, error) {
	return c.s.tr.Client(id)
}
func (c storeCluster) KnownState(group uint64) (*storepb.GroupState, bool) {
	if g := c.s.group(group); g != nil {
		return g.State(), true
	}
	return nil, false
}

// runDriverWhileMetaLeader runs the switch driver while this store leads
// the meta group.
func (s *Store) runDriverWhileMetaLeader() {
	d := modeswitch.New(storeCluster{s}, s.log.Named("switch"), 0)
	s.driver = d
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var cancel context.CancelFunc
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	done := make(chan struct{})
	close(done)
	for {
		st, _ := s.raft.Status(keys.MetaGroupID)
		switch {
		case st.IsLeader && cancel == nil:
			var ctx context.Context
			ctx, cancel = context.WithCancel(s.ctx)
			done = make(chan struct{})
			go func() { defer close(done); d.Run(ctx) }()
		case !st.IsLeader && cancel != nil:
			cancel()
			<-done
			cancel = nil
		}
		select {
		case <-s.ctx.Done():
			if cancel != nil {
				cancel()
				<-done
			}
			return
		case <-t.C:
		case <-s.table.Changed():
			d.Kick()
		}
	}
}
