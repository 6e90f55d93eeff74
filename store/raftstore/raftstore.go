// Package raftstore runs every Raft group of a store from one loop: the
// meta group (static mode) and one group per strong namespace.
//
// Each round of the loop collects the Ready of every group, writes all
// their snapshots, entries and hard states in one pebble batch synced once,
// sends messages, applies the committed entries of every group in one
// batch, then advances. Many client operations therefore share one fsync.
//
// Proposals and reads may be made on any replica: Raft forwards proposals to
// the leader, and ReadIndex reads (ReadOnlySafe) are confirmed by it, so a
// client never needs to know who leads.
//
// Files: loop.go is the loop, read top to bottom; apply.go the contract
// with a group's state machine; requests.go proposals and reads from
// outside the loop; lifecycle.go opening, starting and creating groups,
// and the entry points of other stores' messages; intake.go the checks
// every such message passes before Raft sees it;
// group.go, storage.go and snapshot.go a group's replica, its log in
// pebble and its snapshots; inbox.go the loop's queue.
package raftstore

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
)

// Transport carries messages to other stores. Both methods must not block.
type Transport interface {
	Send(to uint64, msgs []*storepb.RaftMessage)
	// SendSnapshot sends a MsgSnap. The transport must call StreamSnapshot
	// exactly once for it and then ReportSnapshot.
	SendSnapshot(to, group uint64, m *eraftpb.Message)
}

// Config configures a RaftStore.
type Config struct {
	StoreID   uint64
	DB        *pebble.DB
	Transport Transport
	Logger    *zap.Logger
	// NewStateMachine returns the state machine of a group, loaded from
	// the DB; an error (a state that cannot be read) fails Open.
	NewStateMachine func(group uint64) (StateMachine, error)
	// WantReplica decides whether a message for a group this store does not
	// have creates an empty replica (which then catches up by snapshot).
	WantReplica func(group uint64) bool
	// ValidateCommand, if set, checks the command of every entry received
	// from another store (a forwarded proposal, or a leader's append)
	// before it enters the log; a message carrying a command it refuses is
	// dropped. A state machine's Apply stops the store on a command it
	// cannot decode, so it should refuse at least those. Nil accepts any.
	ValidateCommand func(group uint64, cmd []byte) error
	// DesiredVoters returns the stores that should be voters of a group;
	// its leader moves the membership to them, one change at a time
	// (members.go). Nil, or an empty answer: no change.
	DesiredVoters func(group uint64) []uint64
	// LearnersFirst adds a wanted store as a learner, promoted once caught
	// up (PD mode); otherwise it is added as a voter at once (static mode,
	// where a joining store becomes a voter of every group).
	LearnersFirst bool
	// OnGroupDestroyed is called, on the loop, after a replica was
	// destroyed because its store left the group.
	OnGroupDestroyed func(group uint64)
	// OnStatusChange, if set, is called, on the loop (or in Open; it must
	// not block), after a group's Status changed in its leader, term,
	// commit, applied index or membership, and after a replica was created
	// or destroyed.
	OnStatusChange func(group uint64)
	// OnRefusedMember is called, on the loop (it must not block), when a
	// message to an existing replica is dropped because its sender is not
	// a member of the replica's configuration (intake rule 6): the replica
	// may be one left behind with a configuration the group has moved past.
	OnRefusedMember func(group uint64)
	// OnRemoved is called, on the loop (it must not block), when this
	// store's replica applies its own removal. The replica is not destroyed
	// then: entries after the removal in its log may add the store back,
	// and the leader may count on what it acknowledged of them. Its owner
	// asks the group and calls DestroyIfIdle (members.go).
	OnRemoved func(group uint64)
	// OnFatal is called when a write to the DB, or a state machine's apply,
	// fails; the loop has stopped.
	OnFatal func(error)
	// AlwaysAwake, if set, names the groups that never sleep (quiesce.go):
	// one whose followers must apply what it commits without being used,
	// such as the group that holds the cluster's own metadata. A sleeping
	// group knows no leader after a restart of all its members, and a
	// member that was behind stays behind until the group is used.
	AlwaysAwake func(group uint64) bool

	TickInterval   time.Duration // default 100ms
	ElectionTicks  int           // default 10
	HeartbeatTicks int           // default 1
	// CompactThreshold: the log is truncated when more than this many
	// applied entries are durable, keeping CompactKeep of them for slow
	// followers. Defaults 10000 and 5000.
	CompactThreshold uint64
	CompactKeep      uint64
	// FS and StagingDir are where received snapshots are staged as SST
	// files before they are ingested (snapstage.go): the DB's file system
	// (default: the OS's), and a directory on it that the engine owns (it
	// is emptied at start-up). Without a StagingDir no snapshot can be
	// received.
	FS         vfs.FS
	StagingDir string
	// CompactBytes: the log is also truncated when it holds more than
	// this many bytes, keeping about a quarter of them: a follower further
	// behind gets a snapshot. Default 64 MiB.
	CompactBytes uint64
}

func (c *Config) setDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.CompactThreshold == 0 {
		c.CompactThreshold = 10000
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.CompactBytes == 0 {
		c.CompactBytes = 64 << 20
	}
	if c.CompactKeep == 0 || c.CompactKeep > c.CompactThreshold {
		c.CompactKeep = c.CompactThreshold / 2
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.OnFatal == nil {
		log := c.Logger
		c.OnFatal = func(err error) { log.Fatal("raft persistence failed", zap.Error(err)) }
	}
}

// Stats are cumulative counters of the loop's work.
type Stats struct {
	Rounds         uint64 // rounds that had work
	SyncedBatches  uint64 // persist batches committed with a sync
	EntriesWritten uint64 // log entries persisted
	EntriesApplied uint64 // committed entries applied
	SnapshotsSent  uint64 // snapshots handed to the transport
	ReadIndexes    uint64 // ReadIndex requests issued (each serves a batch of reads)
	Reads          uint64 // reads served through them
	// Dropped counts messages from other stores dropped at the intake
	// (intake.go): undecodable, for a group this store has no replica of
	// and should not create, or failing a check.
	Dropped uint64
	// Groups is how many replicas this store holds, Awake how many of them
	// tick (quiesce.go); Wakeups and Quiesced count the transitions.
	Groups, Awake, Wakeups, Quiesced uint64
	// SnapshotsReceiving counts snapshot streams being staged now, and
	// SnapshotBytesReceived the bytes they have taken (snapstage.go).
	SnapshotsReceiving, SnapshotBytesReceived uint64
	// Heartbeats counts the heartbeats and responses of awake groups sent;
	// they travel in the per-peer batches of the round (one stream
	// message per store pair), never alone.
	Heartbeats uint64
	// LogCacheHits and LogReads count the log lookups (entries, terms)
	// answered by a group's cache of its newest entries, and those read
	// from the DB.
	LogCacheHits, LogReads uint64
	// StoresDown counts the times another store was taken for down (not
	// heard from for an election timeout), which wakes the groups it led.
	StoresDown uint64
}

type stats struct {
	rounds, synced, written, applied, snapsSent, readIndexes, reads, dropped atomic.Uint64
	awake, wakeups, quiesced, groups                                         atomic.Uint64
	snapStaging, snapBytes, heartbeats, logHits, logReads, storesDown        atomic.Uint64
}

// Stats returns the loop's counters.
func (rs *RaftStore) Stats() Stats {
	s := &rs.stats
	return Stats{
		Rounds: s.rounds.Load(), SyncedBatches: s.synced.Load(), EntriesWritten: s.written.Load(),
		EntriesApplied: s.applied.Load(), SnapshotsSent: s.snapsSent.Load(), ReadIndexes: s.readIndexes.Load(), Reads: s.reads.Load(),
		Dropped: s.dropped.Load(),
		Groups:  s.groups.Load(), Awake: s.awake.Load(), Wakeups: s.wakeups.Load(), Quiesced: s.quiesced.Load(),
		SnapshotsReceiving: s.snapStaging.Load(), SnapshotBytesReceived: s.snapBytes.Load(), Heartbeats: s.heartbeats.Load(),
		LogCacheHits: s.logHits.Load(), LogReads: s.logReads.Load(), StoresDown: s.storesDown.Load(),
	}
}

// Status is a snapshot of a group's Raft state.
type Status struct {
	Group   uint64
	Leader  uint64
	Term    uint64
	Commit  uint64
	Applied uint64
	// Voters and Learners are the applied configuration's own slices,
	// which are replaced, never changed in place: read only.
	Voters   []uint64
	Learners []uint64
	IsLeader bool
	// SnapshotsApplied counts snapshots this replica installed since start.
	SnapshotsApplied uint64
	// Asleep: the group does not tick (quiesce.go). A replica asleep since
	// start-up knows no leader until it is used.
	Asleep bool
}

// RaftStore is the multi-Raft engine of one store.
type RaftStore struct {
	cfg Config
	db  *pebble.DB
	log *zap.Logger
	// raftLog is what every group's raftLogger writes to.
	raftLog *zap.SugaredLogger
	// v is the view intake checks a message against, of group viewing
	// (group.view). Loop only.
	v       view
	viewing *group

	mu     sync.RWMutex // guards groups for readers outside the loop
	groups map[uint64]*group
	moved  []*group // loop-owned: groups whose log an append or snapshot changed this round
	drops  dropLog  // loop-owned

	// Loop-owned (quiesce.go): the groups that tick; those to handle this
	// round; those whose applied index is not known durable yet; the
	// liveness of the stores this one shares groups with.
	ticking     []*group
	dirty       []*group
	undurable   []*group
	peers       map[uint64]*peerLiveness
	incarnation []byte
	// wakeQueue: sleeping groups that a store's failure, restart or return
	// wakes, wakeBudget of them a tick (quiesce.go).
	wakeQueue []*group
	// startWakes: groups loaded at start-up that this store most likely
	// led, to wake at startWakeAt unless another store called them first
	// (quiesce.go, wakeStartLeaders).
	startWakes  []*group
	startWakeAt time.Time
	// livenessPeers is the loop's set of watched stores, for sendLiveness.
	livenessPeers atomic.Pointer[[]uint64]
	// boots are the bootstraps queued this round (createGroup), booting
	// their groups.
	boots   []boot
	booting map[uint64]bool
	// queued counts the creations of each group put in the inbox and not
	// run yet (queueCreate): a message for such a group that the loop
	// takes before the creation goes back to the inbox, behind it, rather
	// than creating an empty replica that only a snapshot can fill.
	queuedMu sync.Mutex
	queued   map[uint64]int

	inbox inbox
	// arrivals: when each store was last heard from, as its messages
	// arrived (before the loop steps them).
	arrivalsMu sync.Mutex
	arrivals   map[uint64]time.Time

	// outbox (loop only) holds the round's messages by store, until
	// flush hands each store's to the transport as one batch.
	outbox map[uint64][]*storepb.RaftMessage

	// unreachPending: stores the transport could not reach, not yet told
	// to the groups; unreachAt (loop only): when each was last told.
	unreachMu      sync.Mutex
	unreachPending map[uint64]bool
	unreachAt      map[uint64]time.Time

	waitMu  sync.Mutex
	waiters map[uint64]*waiter

	snapMu   sync.Mutex
	snaps    map[uint64]*pendingSnapshot
	staged   map[uint64]*stagedSnapshot
	nextSnap uint64

	reqSeq  atomic.Uint64
	readSeq uint64

	stats stats

	stopc    chan struct{}
	donec    chan struct{}
	stopOnce sync.Once
	started  atomic.Bool
}

// post runs fn in the loop, at the start of its next round.
func (rs *RaftStore) post(fn func()) { rs.inbox.put(fn) }

// FrameSize is the size of the frame before a proposed command: a caller
// that builds a large command after FrameSize free bytes proposes it with
// ProposeFramedRetrying, without a copy.
const FrameSize = 17

// frame prefixes a command with its origin store and request id so that
// the proposing store can hand the result to the waiting caller.
func frame(origin, id uint64, cmd []byte) []byte {
	b := make([]byte, FrameSize, FrameSize+len(cmd))
	putFrame(b, origin, id)
	return append(b, cmd...)
}

// putFrame writes the frame into the first FrameSize bytes of b.
func putFrame(b []byte, origin, id uint64) {
	b[0] = 0xA1
	binary.BigEndian.PutUint64(b[1:], origin)
	binary.BigEndian.PutUint64(b[9:], id)
}

func unframe(data []byte) (origin, id uint64, cmd []byte, err error) {
	if len(data) < FrameSize || data[0] != 0xA1 {
		return 0, 0, nil, fmt.Errorf("raftstore: entry of %d bytes has no frame", len(data))
	}
	return binary.BigEndian.Uint64(data[1:]), binary.BigEndian.Uint64(data[9:]), data[17:], nil
}
