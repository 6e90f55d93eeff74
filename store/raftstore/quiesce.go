package raftstore

// Quiescence: an idle group costs nothing.
//
// A group ticks only while it is awake. Its leader puts it to sleep once it
// has been idle for quiesceTicks ticks: nothing proposed or read pending,
// every entry committed and applied, every member holding the whole log,
// no leadership transfer, and (PD mode) the membership its owner wants. It
// then sends each member one last heartbeat marked quiesce (RaftMessage
// .quiesce) and stops ticking. A follower that steps such a heartbeat from
// its leader, holding the leader's whole log, stops ticking too. A
// sleeping group does no loop work at all: the loop ticks, reads and
// handles Ready only for the groups that are awake or were touched in the
// round (rs.ticking, rs.dirty).
//
// Anything wakes a group: a proposal, a read, a membership change its owner
// asks for, a leadership transfer, or any message from another store but
// the two that keep it asleep (the quiesce heartbeat on a follower, the
// heartbeat response on a leader). A follower that missed the quiesce
// heartbeat keeps ticking and campaigns; its pre-vote wakes the others,
// which refuse it (they heard from their leader within the election
// timeout) and the leader heartbeats again, then sleeps again.
//
// Sleeping followers cannot see their leader fail through the group's own
// heartbeats, so stores watch each other instead (store liveness): every
// store sends every store it shares a group with a small message (group 0,
// the store's incarnation) every heartbeat tick, whether or not any group
// is awake. A store not heard from for an election timeout is down: the
// sleeping groups it led wake and elect a new leader. A store heard with a
// new incarnation restarted (its replicas lost their leadership): the
// groups it led wake too. A member on a store that is down does not keep
// its group awake (it would keep every group it shares awake until PD
// replaces it); when the store is heard again, the sleeping groups led
// here that it is a member of wake and catch it up.
//
// At start-up a group whose log is all applied sleeps, with no leader
// known (one with entries past its applied index wakes at once: they may
// need a leader to commit), so a restarted store with 100,000 groups does
// not hold 100,000 elections. A group wakes on first use (or when a peer
// calls); a replica that knows no leader campaigns after an election
// timeout, and a sleeping leader woken by its pre-vote heartbeats at once,
// so the first call waits one or two election timeouts.

import (
	"cmp"
	"context"
	"encoding/binary"
	"maps"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
)

// quiesceTicks is how many consecutive idle ticks a leader waits before it
// puts its group to sleep.
const quiesceTicks = 3

// livenessGroup is the group id of store liveness messages: no Raft group
// has id 0.
const livenessGroup uint64 = 0

// peerLiveness is what a store knows of another's liveness. Loop only.
type peerLiveness struct {
	lastHeard   time.Time
	incarnation uint64
	down        bool
}

// markDirty queues g for this round's Ready handling. Loop only.
func (rs *RaftStore) markDirty(g *group) {
	if !g.dirty {
		g.dirty = true
		rs.dirty = append(rs.dirty, g)
	}
}

// wake makes g tick again and queues it for this round. Loop only.
func (rs *RaftStore) wake(g *group) {
	rs.markDirty(g)
	if g.tickIdx >= 0 {
		return
	}
	g.idleTicks = 0
	g.tickIdx = len(rs.ticking)
	rs.ticking = append(rs.ticking, g)
	rs.stats.wakeups.Add(1)
	rs.stats.awake.Add(1)
	g.publishStatus()
}

// sleep stops g ticking. Loop only.
func (rs *RaftStore) sleep(g *group) {
	if g.tickIdx < 0 {
		return
	}
	last := rs.ticking[len(rs.ticking)-1]
	rs.ticking[g.tickIdx] = last
	last.tickIdx = g.tickIdx
	rs.ticking = rs.ticking[:len(rs.ticking)-1]
	g.tickIdx = -1
	g.idleTicks = 0
	g.storage.releaseCache() // every member holds the whole log
	rs.stats.awake.Add(^uint64(0))
	rs.stats.quiesced.Add(1)
	g.publishStatus()
}

// use wakes g for a call (a proposal, a read): its leader starts counting
// idle ticks again. Loop only.
func (rs *RaftStore) use(g *group) {
	rs.wake(g)
	g.idleTicks = 0
	if g.loaded && g.lead == raft.None && g.state == raft.StateFollower && g.received.Load() == 0 {
		// Loaded at start-up, and no store has called it since: it knows
		// no leader, and the call would wait an election timeout for it
		// to campaign. It pre-votes now: a sleeping leader wakes on it
		// and heartbeats; followers of this very store (it restarted)
		// grant it (stepRemote); else the group elects as usual.
		g.loaded = false
		_ = g.rn.Campaign()
	}
}

// Wake wakes this store's replica of group (its owner wants a membership
// change, or a leadership transfer).
func (rs *RaftStore) Wake(group uint64) {
	rs.post(func() {
		if g := rs.groups[group]; g != nil {
			rs.wake(g)
		}
	})
}

// WakeAll wakes every group (the wanted voters of all of them changed: a
// store joined or left the static cluster). It does not block.
func (rs *RaftStore) WakeAll() {
	rs.post(func() {
		for _, g := range rs.groups {
			rs.wake(g)
		}
	})
}

// idle reports whether g's leader may put the group to sleep: nothing
// pending anywhere, every member holding the whole log.
func (rs *RaftStore) idle(g *group) bool {
	if !g.isLeader() || len(g.pendingReads) > 0 || len(g.reads) > 0 || len(g.readWait) > 0 || g.rn.HasReady() {
		return false
	}
	bs := g.rn.BasicStatus()
	if bs.LeadTransferee != raft.None || bs.HardState.GetCommit() != g.lastIndex || g.applied.index != g.lastIndex {
		return false
	}
	if !rs.membershipSettled(g) {
		return false
	}
	// A leader that has lost its quorum stays awake: CheckQuorum steps it
	// down, and its followers elect once they are back.
	live := 0
	voters := g.applied.conf.GetVoters()
	for _, id := range voters {
		if id == rs.cfg.StoreID || !rs.storeDown(id) {
			live++
		}
	}
	if live <= len(voters)/2 {
		return false
	}
	all := true
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == rs.cfg.StoreID || rs.storeDown(id) {
			// A member on a store that is down does not keep the group
			// awake: the group wakes when the store is heard again.
			return
		}
		if pr.Match != g.lastIndex || pr.State != tracker.StateReplicate {
			all = false
		}
	})
	return all
}

// membershipSettled reports whether g's members are those its owner wants
// (always, without DesiredVoters).
func (rs *RaftStore) membershipSettled(g *group) bool {
	if rs.cfg.DesiredVoters == nil {
		return true
	}
	want := rs.cfg.DesiredVoters(g.id)
	if len(want) == 0 {
		return true
	}
	voters := g.applied.conf.GetVoters()
	return len(g.applied.conf.GetLearners()) == 0 && len(voters) == len(want) && containsAll(voters, want)
}

// maybeQuiesce puts a leader's group to sleep once it has been idle for
// quiesceTicks ticks, telling its members, and reports whether it did.
// Loop only, before the group's tick (whose heartbeats are work).
func (rs *RaftStore) maybeQuiesce(g *group) bool {
	if !rs.idle(g) || rs.alwaysAwake(g.id) {
		g.idleTicks = 0
		return false
	}
	g.idleTicks++
	if g.idleTicks < quiesceTicks {
		return false
	}
	bs := g.rn.BasicStatus()
	term, commit := bs.HardState.GetTerm(), bs.HardState.GetCommit()
	// As raft's own heartbeats, never past what a member has: one on a
	// store that is down may lack entries, and would refuse (intake rule
	// 9) a heartbeat committing them, and with it its leader.
	for _, id := range g.members() {
		if id == rs.cfg.StoreID {
			continue
		}
		m := &eraftpb.Message{Type: eraftpb.MsgHeartbeat.Enum(), To: new(id), From: new(rs.cfg.StoreID), Term: new(term), Commit: new(min(commit, g.match(id)))}
		data, err := proto.Marshal(m)
		if err != nil {
			rs.log.Error("marshal quiesce heartbeat", zap.Error(err))
			return false
		}
		rs.queue(id, &storepb.RaftMessage{GroupId: g.id, Data: data, Quiesce: true})
	}
	rs.sleep(g)
	return true
}

// followerQuiesce puts a follower's group to sleep after it stepped a
// quiesce heartbeat from its leader, if it holds the leader's whole log and
// has nothing pending. Loop only.
func (rs *RaftStore) followerQuiesce(g *group, from uint64, m *eraftpb.Message) {
	if rs.alwaysAwake(g.id) {
		return
	}
	bs := g.rn.BasicStatus()
	if bs.RaftState != raft.StateFollower || bs.Lead != from || bs.HardState.GetTerm() != m.GetTerm() ||
		m.GetCommit() != g.lastIndex || bs.HardState.GetCommit() != g.lastIndex ||
		len(g.pendingReads) > 0 || len(g.reads) > 0 || len(g.readWait) > 0 {
		return
	}
	rs.sleep(g)
}

// AwakeGroups lists the groups whose replica here is awake, as the loop
// sees them: a pass that looks only at awake replicas need not visit
// 100,000 sleeping ones.
func (rs *RaftStore) AwakeGroups(ctx context.Context) ([]uint64, error) {
	ch := make(chan []uint64, 1)
	rs.post(func() {
		ids := make([]uint64, 0, len(rs.ticking))
		for _, g := range rs.ticking {
			ids = append(ids, g.id)
		}
		ch <- ids
	})
	select {
	case ids := <-ch:
		return ids, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-rs.donec:
		return nil, ErrStopped
	}
}

// alwaysAwake reports whether group never sleeps (Config.AlwaysAwake).
func (rs *RaftStore) alwaysAwake(group uint64) bool {
	return rs.cfg.AlwaysAwake != nil && rs.cfg.AlwaysAwake(group)
}

// match is how much of g's log member id is known to hold (leader only; 0
// for a store that is not a member).
func (g *group) match(id uint64) (match uint64) {
	g.rn.WithProgress(func(pid uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pid == id {
			match = pr.Match
		}
	})
	return match
}

// members lists g's voters and learners.
func (g *group) members() []uint64 {
	cs := g.applied.conf
	out := make([]uint64, 0, len(cs.GetVoters())+len(cs.GetLearners()))
	out = append(out, cs.GetVoters()...)
	return append(out, cs.GetLearners()...)
}

// notePeers adds a configuration's members to the stores this one watches.
// Loop only.
func (rs *RaftStore) notePeers(cs *eraftpb.ConfState, now time.Time) {
	for _, ids := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners()} {
		for _, id := range ids {
			if id != rs.cfg.StoreID && rs.peers[id] == nil {
				rs.peers[id] = &peerLiveness{lastHeard: now}
				rs.publishPeers()
			}
		}
	}
}

// storeDown reports whether store id has not been heard from for an
// election timeout. Loop only.
func (rs *RaftStore) storeDown(id uint64) bool {
	p := rs.peers[id]
	return p != nil && p.down
}

// heard notes that store from sent something; incarnation is nonzero on a
// liveness message. Loop only.
func (rs *RaftStore) heard(from, incarnation uint64, now time.Time) {
	p := rs.peers[from]
	if p == nil {
		p = &peerLiveness{}
		rs.peers[from] = p
		rs.publishPeers()
	}
	p.lastHeard = now
	if p.down {
		p.down = false
		rs.log.Info("store is live again: waking the groups this store leads with it", zap.Uint64("store", from))
		rs.wakeLeadingWith(from)
	}
	if incarnation == 0 {
		return
	}
	if p.incarnation != 0 && p.incarnation != incarnation {
		rs.log.Info("store restarted: waking the groups it led", zap.Uint64("store", from))
		rs.wakeLedBy(from)
	}
	p.incarnation = incarnation
}

// sendLiveness sends this store's liveness to every store it shares a
// group with, every heartbeat interval, until the loop stops. It runs
// beside the loop, not in it: a loop that stalls (a long round, a burst of
// work at 100,000 groups) must not silence its store, or its peers take it
// for down and wake every group it leads.
func (rs *RaftStore) sendLiveness() {
	t := time.NewTicker(time.Duration(rs.cfg.HeartbeatTicks) * rs.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-rs.donec:
			return
		case <-t.C:
		}
		if peers := rs.livenessPeers.Load(); peers != nil {
			for _, id := range *peers {
				rs.cfg.Transport.Send(id, []*storepb.RaftMessage{{GroupId: livenessGroup, Data: rs.incarnation}})
			}
		}
	}
}

// publishPeers makes the stores this one watches known to sendLiveness.
// Loop only, when one is added.
func (rs *RaftStore) publishPeers() {
	ids := slices.Sorted(maps.Keys(rs.peers))
	rs.livenessPeers.Store(&ids)
}

// checkLiveness wakes the sleeping groups led by a store not heard from
// for an election timeout. Loop only, every tick.
func (rs *RaftStore) checkLiveness(now time.Time) {
	timeout := time.Duration(rs.cfg.ElectionTicks) * rs.cfg.TickInterval
	for id, p := range rs.peers {
		if at := rs.arrival(id); at.After(p.lastHeard) && !p.down {
			// Heard, though the loop has not stepped it yet: a loop
			// that stalled (a GC pause, a long round) does not take its
			// peers for down, and wake every group they lead.
			p.lastHeard = at
		}
		if !p.down && now.Sub(p.lastHeard) > timeout {
			p.down = true
			rs.stats.storesDown.Add(1)
			rs.log.Info("store not heard from for an election timeout: waking the groups it led", zap.Uint64("store", id))
			rs.wakeLedBy(id)
		}
	}
}

// silent reports whether another store has not been heard from for half
// an election timeout: every store sends every peer its liveness each
// heartbeat tick. Loop only.
func (rs *RaftStore) silent(id uint64) bool {
	p := rs.peers[id]
	if id == raft.None || id == rs.cfg.StoreID || p == nil {
		return false
	}
	heard := p.lastHeard
	if at := rs.arrival(id); at.After(heard) {
		heard = at
	}
	return time.Since(heard) > time.Duration(rs.cfg.ElectionTicks)*rs.cfg.TickInterval/2
}

// noteArrival records that store from was heard at at. Any goroutine: the
// transport's, as messages arrive.
func (rs *RaftStore) noteArrival(from uint64, at time.Time) {
	rs.arrivalsMu.Lock()
	defer rs.arrivalsMu.Unlock()
	if rs.arrivals == nil {
		rs.arrivals = make(map[uint64]time.Time)
	}
	rs.arrivals[from] = at
}

// arrival is when store id was last heard, as messages arrived.
func (rs *RaftStore) arrival(id uint64) time.Time {
	rs.arrivalsMu.Lock()
	defer rs.arrivalsMu.Unlock()
	return rs.arrivals[id]
}

// wakeBudget is how many groups queued by a store's failure, restart or
// return (wakeLedBy, wakeLeadingWith) wake each tick. A store that leads
// 30,000 sleeping groups and restarts would otherwise start 30,000
// elections in one round on each of its peers, and starve every call for
// many seconds; a group that is used wakes at once all the same.
const wakeBudget = 256

// queueWake queues a sleeping group to wake within a few ticks. Loop only.
func (rs *RaftStore) queueWake(g *group) {
	if g.tickIdx < 0 && !g.wakeQueued {
		g.wakeQueued = true
		rs.wakeQueue = append(rs.wakeQueue, g)
	}
}

// drainWakes wakes up to wakeBudget queued groups. Loop only, every tick.
//
// A group whose leader's store failed or restarted (leaderGone) would
// otherwise tick for an election timeout before its first campaign, and
// refuse its peers' campaigns for as long (the leader's lease): with
// 30,000 such groups, tens of thousands tick at once for seconds, which is
// most of what such a wake-up costs. It runs its clock past the lease at
// forgets its leader instead (forgetLeader), and the replica on the first
// live member (lowest store id) campaigns at once; the others grant it
// (stepRemote), or campaign after their own election timeout if it does
// not. Both peers queue the same groups in the same order (by
// group id), so they wake each group at about the same time.
func (rs *RaftStore) drainWakes() {
	n := min(len(rs.wakeQueue), wakeBudget)
	for _, g := range rs.wakeQueue[:n] {
		g.wakeQueued = false
		if rs.groups[g.id] != g {
			continue
		}
		rs.wake(g)
		if g.leaderGone && !g.isLeader() {
			first := rs.firstLive(g)
			rs.forgetLeader(g)
			if first {
				_ = g.rn.Campaign()
			}
		}
	}
	rest := copy(rs.wakeQueue, rs.wakeQueue[n:])
	clear(rs.wakeQueue[rest:])
	rs.wakeQueue = rs.wakeQueue[:rest]
}

// startWakeDelay is how many election timeouts after start-up the groups
// this store most likely led wake, if no other store called them first.
// A store that restarts alone finds its peers electing new leaders for the
// groups it led (they saw it fail or restart: wakeLedBy), and their
// elections call its replicas; waking those replicas itself as well would
// hold a second election in each, for nothing. After a restart of every
// store nobody calls: the groups wake then, and elect.
const startWakeDelay = 5

// wakeStartLeaders queues, once startWakeDelay has passed, the groups
// loaded at start-up that this store most likely led and that have heard
// from no other store since. Loop only, every tick.
func (rs *RaftStore) wakeStartLeaders(now time.Time) {
	if len(rs.startWakes) == 0 || now.Before(rs.startWakeAt) {
		return
	}
	for _, g := range rs.startWakes {
		if rs.groups[g.id] == g && g.lead == 0 && g.received.Load() == 0 {
			rs.queueWake(g)
		}
	}
	rs.startWakes = nil
}

// wakeLedBy queues every sleeping group whose leader is store id, in
// group id order, marked leaderGone. Loop only; it visits every group, but
// only when a store fails or restarts.
func (rs *RaftStore) wakeLedBy(id uint64) {
	var led []*group
	for _, g := range rs.groups {
		if g.tickIdx < 0 && g.lead == id {
			led = append(led, g)
		}
	}
	slices.SortFunc(led, func(a, b *group) int { return cmp.Compare(a.id, b.id) })
	for _, g := range led {
		g.leaderGone = true
		rs.queueWake(g)
	}
}

// forgetLeader makes g's replica forget the leader it last knew, which
// leads no more (its store failed or restarted), so that it grants its
// peers' campaigns at once: a follower refuses them for an election
// timeout after it last heard from its leader (CheckQuorum's lease), and a
// sleeping one's clock stands still. It does not campaign itself before its
// own election timeout. Votes never decide what is committed, and reads do
// not rely on leases (ReadOnlySafe): only availability is at stake. Loop
// only.
func (rs *RaftStore) forgetLeader(g *group) {
	g.leaderGone = false
	_ = g.rn.ForgetLeader()
}

// firstLive reports whether this store is the lowest-numbered voter of g
// not known to be down, the leader's store aside.
func (rs *RaftStore) firstLive(g *group) bool {
	first := uint64(0)
	for _, id := range g.applied.conf.GetVoters() {
		p := rs.peers[id]
		live := id == rs.cfg.StoreID || (p != nil && !p.down)
		if id != g.lead && live && (first == 0 || id < first) {
			first = id
		}
	}
	return first == rs.cfg.StoreID
}

// wakeLeadingWith queues every sleeping group this store leads in which
// store id lacks entries: it fell asleep while id was down. Loop only; it
// visits every group, but only when a store comes back. A member that
// holds the whole log needs nothing: its replica sleeps on.
func (rs *RaftStore) wakeLeadingWith(id uint64) {
	for _, g := range rs.groups {
		if g.tickIdx >= 0 || !g.isLeader() || !slices.Contains(g.members(), id) {
			continue
		}
		if g.match(id) < g.lastIndex {
			rs.queueWake(g)
		}
	}
}

// decodeIncarnation reads a liveness message's incarnation.
func decodeIncarnation(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	v := binary.BigEndian.Uint64(b)
	return v, v != 0
}
