package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/pdpb"
)

// Leader election, in the style of TiKV's PD. A member campaigns by granting
// a lease and creating /rdb/leader with it, only if the key does not exist.
// The winner renews the lease every third of its TTL and stops acting as
// leader as soon as it cannot be sure the lease still lives (its own clock:
// the renewal's send time plus the TTL, which is never later than etcd's
// expiry), when the key is deleted, or when it shuts down (it then revokes the
// lease so that another member takes over at once). Every PD write compares
// the key's value and create revision with the leader's own, so a former
// leader's late writes fail even if its clock lied.
//
// The others watch the key, forward leader-only requests to the member it
// names, and campaign when it disappears.

// leadership is one term of this member as leader.
type leadership struct {
	ctx       context.Context // cancelled when the term ends
	cancel    context.CancelFunc
	createRev int64 // create revision of the leader key: one per term
	lease     clientv3.LeaseID
	expire    atomic.Int64 // unix nanos until which the lease surely lives
	// driverDone is closed when the driver of this term has returned.
	driverDone chan struct{}
	// formDone is closed when the group formation loop of this term has
	// returned.
	formDone chan struct{}
	// groupIDs hands out the group ids this term reserved.
	groupIDs groupIDBlock
	// table is this term's copy of the mode table; tableDone is closed
	// when the loop keeping it has returned.
	table     *tableCache
	tableDone chan struct{}
}

func (l *leadership) valid(now time.Time) bool {
	return l.ctx.Err() == nil && now.UnixNano() < l.expire.Load()
}

// fence is the condition under which a write of term l may happen.
func (s *Server) fence(l *leadership) []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(leaderKey), "=", string(s.memberValue)),
		clientv3.Compare(clientv3.CreateRevision(leaderKey), "=", l.createRev),
	}
}

// stillLeader tells from the leader key (as read by a failed fenced txn)
// whether term l still holds. When it does not, the term is ended at once.
func (s *Server) stillLeader(l *leadership, kvs []*mvccpb.KeyValue) bool {
	if len(kvs) == 1 && bytes.Equal(kvs[0].Value, s.memberValue) && kvs[0].CreateRevision == l.createRev {
		return true
	}
	l.cancel()
	return false
}

// currentLeadership returns this member's term if it is leader now.
func (s *Server) currentLeadership() *leadership {
	s.mu.RLock()
	l := s.lead
	s.mu.RUnlock()
	if l != nil && l.valid(time.Now()) {
		return l
	}
	return nil
}

// Leader returns the PD leader as this member knows it, or nil.
func (s *Server) Leader() *pdpb.Member {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.leader
}

// IsLeader reports whether this member is the PD leader now.
func (s *Server) IsLeader() bool { return s.currentLeadership() != nil }

func (s *Server) setLeader(m *pdpb.Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leader = m
}

// runElection campaigns, leads and follows until ctx is cancelled.
func (s *Server) runElection(ctx context.Context) {
	const maxBackoff = time.Second
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := s.electOnce(ctx); err != nil && ctx.Err() == nil {
			s.lg.Warn("PD election round failed", zap.Error(err), zap.Duration("retry-in", backoff))
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

// electOnce follows the current leader until it goes, or campaigns and leads
// until the term ends.
func (s *Server) electOnce(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := s.client.Get(rctx, leaderKey)
	cancel()
	if err != nil {
		return fmt.Errorf("read leader key: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return s.campaign(ctx)
	}
	kv := resp.Kvs[0]
	if bytes.Equal(kv.Value, s.memberValue) {
		// Left by an earlier run of this member (restarted within the lease
		// TTL): no one serves that term, so end it and campaign now.
		s.lg.Info("removing this member's leader key from an earlier run")
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		_, err := s.client.Txn(rctx).
			If(clientv3.Compare(clientv3.CreateRevision(leaderKey), "=", kv.CreateRevision)).
			Then(clientv3.OpDelete(leaderKey)).Commit()
		return err
	}
	leader := &pdpb.Member{}
	if err := proto.Unmarshal(kv.Value, leader); err != nil {
		return fmt.Errorf("decode leader key: %w", err)
	}
	s.setLeader(leader)
	defer s.setLeader(nil)
	s.lg.Info("following PD leader", zap.String("leader", leader.GetName()))
	return s.followUntilGone(ctx, kv.ModRevision+1)
}

// followUntilGone watches the leader key from rev until it is deleted.
func (s *Server) followUntilGone(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range s.client.Watch(wctx, leaderKey, clientv3.WithRev(rev)) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch leader key: %w", err)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return nil
			}
			leader := &pdpb.Member{}
			if err := proto.Unmarshal(ev.Kv.Value, leader); err != nil {
				return fmt.Errorf("decode leader key: %w", err)
			}
			s.setLeader(leader)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("watch of the leader key ended")
}

// campaign tries to become leader; if it wins, it leads until the term ends.
func (s *Server) campaign(ctx context.Context) error {
	ttl := s.leaseTTL()
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	grant, err := s.client.Grant(rctx, int64(ttl/time.Second))
	if err != nil {
		return fmt.Errorf("grant lease: %w", err)
	}
	resp, err := s.client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(leaderKey), "=", 0)).
		Then(clientv3.OpPut(leaderKey, string(s.memberValue), clientv3.WithLease(grant.ID))).
		Commit()
	if err != nil || !resp.Succeeded {
		s.revoke(grant.ID)
		if err != nil {
			return fmt.Errorf("campaign: %w", err)
		}
		return nil // another member won: follow it
	}

	l := &leadership{createRev: resp.Header.Revision, lease: grant.ID, table: newTableCache(), tableDone: make(chan struct{})}
	l.expire.Store(start.Add(time.Duration(grant.TTL) * time.Second).UnixNano())
	l.ctx, l.cancel = context.WithCancel(ctx)
	defer s.stepDown(l)
	go func() {
		defer close(l.tableDone)
		s.runTableCache(l.ctx, l.table)
	}()

	// A new leader reloads what it keeps in memory before serving: the
	// registered stores (the namespace table is always read from etcd),
	// and the cluster's id, which the first leader creates.
	if err := s.ensureClusterID(l.ctx); err != nil {
		return fmt.Errorf("cluster id as new leader: %w", err)
	}
	if err := s.loadStores(l.ctx); err != nil {
		return fmt.Errorf("reload stores as new leader: %w", err)
	}
	s.mu.Lock()
	s.lead, s.leader = l, s.member
	s.mu.Unlock()
	s.lg.Info("became PD leader", zap.Int64("term", l.createRev), zap.Int64("lease", int64(l.lease)))

	if s.cfg.Driver != nil {
		l.driverDone = make(chan struct{})
		go func() {
			defer close(l.driverDone)
			s.cfg.Driver.Run(l.ctx, &leaderCluster{s: s, l: l})
		}()
	}
	// Strong namespaces created while no store was up wait for the leader
	// to give their groups voters.
	l.formDone = make(chan struct{})
	go func() {
		defer close(l.formDone)
		s.runFormation(l)
	}()
	err = s.keepLeading(l, ttl)
	s.lg.Info("PD leadership ends", zap.Int64("term", l.createRev), zap.NamedError("reason", err))
	return nil
}

// keepLeading renews the lease and watches the leader key until the term
// ends; it returns why it ended.
func (s *Server) keepLeading(l *leadership, ttl time.Duration) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(l.ctx))
	defer cancel()
	wch := s.client.Watch(wctx, leaderKey, clientv3.WithRev(l.createRev+1))
	renew := time.NewTicker(ttl / 3)
	defer renew.Stop()
	expiry := time.NewTimer(time.Until(time.Unix(0, l.expire.Load())))
	defer expiry.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return l.ctx.Err()
		case <-expiry.C:
			return errors.New("lease not renewed in time")
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch of the leader key ended")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch leader key: %w", err)
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete || !bytes.Equal(ev.Kv.Value, s.memberValue) {
					return errors.New("leader key removed")
				}
			}
		case <-renew.C:
			sent := time.Now()
			kctx, kcancel := context.WithTimeout(l.ctx, ttl/3)
			resp, err := s.client.KeepAliveOnce(kctx, l.lease)
			kcancel()
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return errors.New("lease expired")
			}
			if err != nil {
				s.lg.Warn("renewing the leader lease failed", zap.Error(err))
				continue
			}
			expire := sent.Add(time.Duration(resp.TTL) * time.Second)
			l.expire.Store(expire.UnixNano())
			expiry.Reset(time.Until(expire))
		}
	}
}

// stepDown ends term l: it stops serving as leader, waits for the driver and
// the formation loop to return, and revokes the lease so another member can
// take over at once.
func (s *Server) stepDown(l *leadership) {
	s.mu.Lock()
	if s.lead == l {
		s.lead, s.leader = nil, nil
	}
	s.mu.Unlock()
	l.cancel()
	if l.driverDone != nil {
		<-l.driverDone
	}
	if l.formDone != nil {
		<-l.formDone
	}
	<-l.tableDone
	if !s.killed.Load() {
		s.revoke(l.lease)
	}
}

func (s *Server) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := s.client.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.lg.Warn("revoking the leader lease failed; it will expire", zap.Error(err))
	}
}

// leaseTTL is the configured lease, in whole seconds.
func (s *Server) leaseTTL() time.Duration {
	return max(s.cfg.LeaderLease.Round(time.Second), time.Second)
}
