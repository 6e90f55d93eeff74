// Package lww is the engine of eventual namespaces: last-writer-wins
// records in the store's pebble DB, replicated to every other store by
// asynchronous pushes and made to converge by anti-entropy.
//
// What it guarantees:
//
//   - Durability: Put and Delete return after a synced write; StageReplace
//     writes only into the caller's batch.
//   - Batches: PutBatch and DeleteBatch write many keys as one write, in
//     one synced pebble batch, and push it to each peer as one unit that
//     the peer applies in one batch too (batch.go).
//     Records received from other stores are written synced too.
//   - One merge rule everywhere (Newer): the greater HLC timestamp wins; at
//     an equal timestamp a tombstone wins. Applying a set of records in any
//     order, any number of times, leaves the same state, so stores that
//     have received the same records hold the same records.
//   - Convergence: a write reaches the other stores by a push, batched per
//     peer. A push may be lost (a full queue, a peer down, a crash); then
//     anti-entropy repairs it: every AntiEntropyInterval, and at once when
//     a peer comes back, a store compares per-bucket digests with each peer
//     and exchanges the records of the buckets that differ, both ways.
//     Periodic rounds compare only records older than AntiEntropySettle,
//     so steady writes whose pushes are still in flight cost no repair;
//     every record gets that old, so none escapes the comparison. Replicas
//     converge after partitions, restarts and lost pushes without any new
//     write.
//   - Tombstones are collected only after TombstoneGrace; received
//     tombstones older than the grace are ignored. Limit: a store cut off
//     for longer than the grace may still hold a value whose tombstone the
//     others have collected; when it returns, that value comes back (as in
//     Cassandra with gc_grace_seconds). Keep the grace above the longest
//     partition to tolerate.
//   - Remote timestamps too far ahead of the local clock (hlc.ErrTooFarAhead)
//     are refused, logged and not applied; anti-entropy offers them again
//     later, by when the clocks may agree.
//
// The caller owns the namespace modes: it calls the local API only for
// namespaces that are eventual, and tells the engine through
// Config.Serving which namespaces to accept from, repair and collect.
package lww

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
)

// Defaults of Config.
const (
	DefaultAntiEntropyInterval = 10 * time.Second
	DefaultTombstoneGrace      = 24 * time.Hour
	DefaultMaxBatch            = 256
	DefaultFlushInterval       = 5 * time.Millisecond
	DefaultQueueBytes          = 64 << 20
	DefaultMaxMessageBytes     = 2 << 20
	DefaultRPCTimeout          = 10 * time.Second
)

// ErrClosed is returned by every call made after Close.
var ErrClosed = errors.New("lww: engine closed")

// Config configures an Engine. Only StoreID, DB and Clock are required.
type Config struct {
	// StoreID is this store's id; it is never among Peers.
	StoreID uint64
	// DB is the store's pebble DB; the engine keeps its records under
	// keys.LWWPrefix. The caller opens it and closes it after Close.
	DB *pebble.DB
	// Clock stamps local writes and is updated by received records.
	Clock *hlc.Clock
	// Logger receives the engine's logs. Nil discards them.
	Logger *zap.Logger
	// Peers returns the other stores, the current set, each with a client
	// of its StoreInternal service. It is called often (each flush and
	// each anti-entropy round) and must be cheap; the engine does not
	// modify the map. Nil means no peers.
	Peers func() map[uint64]storepb.StoreInternalClient
	// Serving reports whether ns is eventual and active on this store: only
	// then does the engine accept records for it from peers, repair it or
	// collect its tombstones. Nil means every namespace.
	Serving func(ns string) bool
	// Holders returns the stores that hold a namespace's replica (PD
	// placement): writes are pushed to them, and anti-entropy runs with
	// them, only. all is true when every store holds it. Nil: every store
	// holds every namespace.
	Holders func(ns string) (ids []uint64, all bool)
	// Namespaces returns the namespaces to run anti-entropy and tombstone
	// collection over (each still checked with Serving). Nil means the
	// namespaces this store holds records of.
	Namespaces func() []string
	// AntiEntropyInterval is the mean time between two anti-entropy rounds
	// with every peer (each round is jittered by ±25%).
	AntiEntropyInterval time.Duration
	// AntiEntropySettle is how old a record must be before periodic
	// anti-entropy compares it: newer ones are normally still on their way
	// in a push, and comparing them would repair, under steady writes,
	// buckets that are about to match anyway. Rounds asked for because a
	// peer came back, or after a failed round, compare every record. Zero
	// means half of AntiEntropyInterval; at most MaxSettle.
	AntiEntropySettle time.Duration
	// TombstoneGrace is how long a tombstone is kept (by wall time since
	// its timestamp) before it is collected; received tombstones older
	// than this are ignored. A store cut off for longer than this can
	// bring deleted values back (see the package doc).
	TombstoneGrace time.Duration
	// GCInterval is the time between two tombstone collections. Zero means
	// a quarter of TombstoneGrace, at most ten minutes.
	GCInterval time.Duration
	// MaxBatch is the most records one pushed ReplicateBatch carries,
	// unless it carries one unit (a batch write) that holds more.
	MaxBatch int
	// FlushInterval is how long a pushed record may wait for others to
	// share its batch; a full batch is sent at once.
	FlushInterval time.Duration
	// QueueBytes bounds the records waiting to be pushed to one peer. A
	// record that does not fit is dropped and the peer is marked for
	// repair: anti-entropy brings it over instead.
	QueueBytes int64
	// MaxMessageBytes sizes pushed batches and anti-entropy messages:
	// each stays under about 1.5 × MaxMessageBytes, or holds one record,
	// or one unit (a batch write of up to 16 MiB, which travels whole:
	// stores take peer messages of up to 64 MiB). The default (2 MiB)
	// keeps messages with 1 MiB values under gRPC's default 4 MiB receive
	// limit.
	MaxMessageBytes int64
	// RPCTimeout bounds each call to a peer.
	RPCTimeout time.Duration
}

func (c *Config) withDefaults() error {
	if c.StoreID == 0 {
		return errors.New("lww: StoreID must be non-zero")
	}
	if c.DB == nil || c.Clock == nil {
		return errors.New("lww: DB and Clock are required")
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Peers == nil {
		c.Peers = func() map[uint64]storepb.StoreInternalClient { return nil }
	}
	if c.Serving == nil {
		c.Serving = func(string) bool { return true }
	}
	setDuration(&c.AntiEntropyInterval, DefaultAntiEntropyInterval)
	setDuration(&c.AntiEntropySettle, c.AntiEntropyInterval/2)
	c.AntiEntropySettle = min(c.AntiEntropySettle, MaxSettle)
	setDuration(&c.TombstoneGrace, DefaultTombstoneGrace)
	if c.GCInterval <= 0 {
		c.GCInterval = min(c.TombstoneGrace/4, 10*time.Minute)
		if c.GCInterval <= 0 {
			c.GCInterval = time.Millisecond
		}
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	setDuration(&c.FlushInterval, DefaultFlushInterval)
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	setDuration(&c.RPCTimeout, DefaultRPCTimeout)
	return nil
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Stats counts what the engine did since New.
type Stats struct {
	// Pushed counts records sent to peers (one per record per peer).
	Pushed uint64
	// Dropped counts records not pushed to a peer (queue full, peer down
	// or send failed); anti-entropy repairs them.
	Dropped uint64
	// Received counts records received from peers (pushes and repairs).
	Received uint64
	// Refused counts received records refused because their timestamp was
	// too far ahead of the local clock.
	Refused uint64
	// Repaired counts records anti-entropy applied on this store, from
	// its own requests and from its peers' requests.
	Repaired uint64
	// RepairSent counts records this store sent to peers in anti-entropy
	// requests and answers.
	RepairSent uint64
	// AntiEntropyRounds counts rounds with one peer over all namespaces.
	AntiEntropyRounds uint64
	// Collected counts tombstones removed by the collector.
	Collected uint64
}

type stats struct {
	pushed, dropped, received, refused, repaired, repairSent, rounds, collected atomic.Uint64
}

// numStripes is the number of key locks. A read-modify-write of a key
// holds its stripe; more stripes mean fewer unrelated writes waiting on
// one another's fsync.
const numStripes = 4096

// Engine is the store's LWW engine. Its methods are safe for concurrent
// use.
type Engine struct {
	cfg   Config
	db    *pebble.DB
	clock *hlc.Clock
	log   *zap.Logger

	stripes [numStripes]sync.Mutex
	// cache holds the current record of recently written keys
	// (reccache.go).
	cache *recordCache

	nsMu sync.RWMutex
	ns   map[string]*nsState

	// opMu is held shared by every call that touches the DB and
	// exclusively by Close, so Close returns only once none is running.
	opMu   sync.RWMutex
	closed bool

	peerMu   sync.Mutex
	peers    map[uint64]*peer
	peerList atomic.Pointer[[]*peer] // the same peers, read without a lock by Put

	aeMu      sync.Mutex
	aeWanted  map[uint64]bool // peers to run anti-entropy with at once
	aeWake    chan struct{}
	startOnce sync.Once
	started   atomic.Bool
	ctx       context.Context // canceled by Close: stops loops and RPCs
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	st stats
}

// New returns an engine over cfg.DB, with the digests of every namespace
// the DB holds built by one scan. It starts nothing: see Start.
func New(cfg Config) (*Engine, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cache:    newRecordCache(),
		cfg:      cfg,
		db:       cfg.DB,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		ns:       make(map[string]*nsState),
		peers:    make(map[uint64]*peer),
		aeWanted: make(map[uint64]bool),
		aeWake:   make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
	}
	e.peerList.Store(&[]*peer{})
	if err := e.loadDigests(); err != nil {
		cancel()
		return nil, err
	}
	return e, nil
}

// loadDigests builds every namespace's digests from the DB.
func (e *Engine) loadDigests() error {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: keys.LWWAllStart(), UpperBound: keys.LWWAllEnd()})
	if err != nil {
		return fmt.Errorf("lww: scan records: %w", err)
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		ns, key, ok := keys.SplitLWWKey(it.Key())
		if !ok {
			return fmt.Errorf("lww: malformed record key %q", it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("lww: read %q: %w", it.Key(), err)
		}
		r, err := decodeValue(v)
		if err != nil {
			return fmt.Errorf("lww: record %q: %w", it.Key(), err)
		}
		e.state(ns).change(key, nil, &r)
		n++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("lww: scan records: %w", err)
	}
	e.log.Info("lww digests loaded", zap.Int("records", n), zap.Int("namespaces", len(e.ns)))
	return nil
}

// Start starts replication, anti-entropy and tombstone collection. Calls
// after the first do nothing.
func (e *Engine) Start() {
	e.startOnce.Do(func() {
		e.opMu.RLock()
		defer e.opMu.RUnlock()
		if e.closed {
			return
		}
		e.started.Store(true)
		e.refreshPeers()
		e.wg.Add(2)
		go e.antiEntropyLoop()
		go e.maintainLoop()
	})
}

// Close stops the background loops and waits for them and for every call
// in progress. The DB stays open; close it after. Close is idempotent.
func (e *Engine) Close() error {
	e.cancel()
	e.opMu.Lock()
	e.closed = true
	e.opMu.Unlock()
	e.wg.Wait()
	return nil
}

// enter marks the start of a call that uses the DB; the caller must call
// e.opMu.RUnlock when it is done.
func (e *Engine) enter() error {
	e.opMu.RLock()
	if e.closed {
		e.opMu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Pushed:            e.st.pushed.Load(),
		Dropped:           e.st.dropped.Load(),
		Received:          e.st.received.Load(),
		Refused:           e.st.refused.Load(),
		Repaired:          e.st.repaired.Load(),
		RepairSent:        e.st.repairSent.Load(),
		AntiEntropyRounds: e.st.rounds.Load(),
		Collected:         e.st.collected.Load(),
	}
}

// Digests returns the NumBuckets bucket digests of ns as this store holds
// them (all zero for a namespace it holds no record of).
func (e *Engine) Digests(ns string) []uint64 {
	if st := e.lookup(ns); st != nil {
		return st.digests()
	}
	return make([]uint64, NumBuckets)
}

// lookup returns the state of ns, or nil if the engine has none.
func (e *Engine) lookup(ns string) *nsState {
	e.nsMu.RLock()
	defer e.nsMu.RUnlock()
	return e.ns[ns]
}

// state returns the state of ns, creating it.
func (e *Engine) state(ns string) *nsState {
	e.nsMu.RLock()
	s := e.ns[ns]
	e.nsMu.RUnlock()
	if s != nil {
		return s
	}
	e.nsMu.Lock()
	defer e.nsMu.Unlock()
	if s = e.ns[ns]; s == nil {
		s = &nsState{}
		e.ns[ns] = s
	}
	return s
}

// namespaces returns the namespaces to repair and collect, served ones
// only.
func (e *Engine) namespaces() []string {
	var all []string
	if e.cfg.Namespaces != nil {
		all = e.cfg.Namespaces()
	} else {
		e.nsMu.RLock()
		for ns := range e.ns {
			all = append(all, ns)
		}
		e.nsMu.RUnlock()
	}
	out := all[:0:0]
	for _, ns := range all {
		if validNamespace(ns) == nil && e.cfg.Serving(ns) {
			out = append(out, ns)
		}
	}
	return out
}

// stripe returns the lock index of a key of a namespace.
func stripe(ns string, key []byte) int {
	h := fnv64a(fnvOffset, []byte(ns))
	h = fnv64a(h^'/', key)
	return int(mix64(h) % numStripes)
}

// readRecord reads the record at the storage key lk; nil if there is none.
// The value is copied.
func (e *Engine) readRecord(lk []byte) (*record, error) { return readRecord(e.db, lk) }

// readRecord is Engine.readRecord through any reader.
func readRecord(rd pebble.Reader, lk []byte) (*record, error) {
	v, closer, err := rd.Get(lk)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lww: read %q: %w", lk, err)
	}
	defer closer.Close()
	r, err := decodeValue(v)
	if err != nil {
		return nil, fmt.Errorf("lww: record %q: %w", lk, err)
	}
	r.value = bytes.Clone(r.value)
	return &r, nil
}

// writeOptions returns pebble's write options for a synced or unsynced
// commit.
func writeOptions(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}
