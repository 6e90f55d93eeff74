package lww

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
)

// Pushing: every local write is queued to every peer; one goroutine per
// peer sends its queue in batches, on one Replicate stream per flush, and
// counts the batch delivered only when the peer has answered (it answers
// after applying). Memory is bounded by Config.QueueBytes per peer (the
// queues share the records). Nothing is retried: a record that could not
// be queued or sent is dropped and the peer is marked for repair, and
// anti-entropy with it runs as soon as a send to it succeeds again. A
// dropped record is always in the DB before it is dropped, so the repair,
// which reads the DB afterwards, carries it.

// errNotPeer fails a send to a store that left the peer set.
var errNotPeer = errors.New("lww: not among the current peers")

// Delays between two attempts to reach a peer that is down.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 2 * time.Second
)

// outRecord is a write waiting to be pushed: one record, or the records
// of one batch write (unit), which are queued, sent and dropped together.
type outRecord struct {
	ns   string
	recs []*storepb.LWWRecord
	unit bool
	size int64
}

// peer is the push queue of one other store.
type peer struct {
	id   uint64
	e    *Engine
	quit chan struct{} // closed when the store leaves the peer set

	// ready is signalled when the queue becomes non-empty, full when it
	// holds a full batch, kick by PeerUp.
	ready, full, kick chan struct{}

	mu          sync.Mutex
	queue       []outRecord
	queued      int64 // bytes in queue
	queuedRecs  int   // records in queue
	down        bool  // the last send failed: drop, and probe until it answers
	needsRepair bool  // a record for it was dropped since the last repair
}

func newPeer(e *Engine, id uint64) *peer {
	return &peer{
		id:    id,
		e:     e,
		quit:  make(chan struct{}),
		ready: make(chan struct{}, 1),
		full:  make(chan struct{}, 1),
		kick:  make(chan struct{}, 1),
		// A new peer may have missed anything: probe it, and repair once
		// it answers.
		down:        true,
		needsRepair: true,
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// refreshPeers brings the push queues in line with Config.Peers: a queue
// and a sender for each new store, none for one that left.
func (e *Engine) refreshPeers() {
	cur := e.cfg.Peers()
	e.peerMu.Lock()
	defer e.peerMu.Unlock()
	changed := false
	for id, client := range cur {
		if id == e.cfg.StoreID || client == nil {
			continue
		}
		if e.peers[id] == nil {
			p := newPeer(e, id)
			e.peers[id] = p
			changed = true
			e.wg.Add(1)
			go p.run()
		}
	}
	for id, p := range e.peers {
		if c, ok := cur[id]; !ok || c == nil {
			close(p.quit)
			delete(e.peers, id)
			changed = true
		}
	}
	if changed {
		list := make([]*peer, 0, len(e.peers))
		for _, p := range e.peers {
			list = append(list, p)
		}
		e.peerList.Store(&list)
	}
}

// holders is Config.Holders, every store when it is nil.
func (e *Engine) holders(ns string) ([]uint64, bool) {
	if e.cfg.Holders == nil {
		return nil, true
	}
	return e.cfg.Holders(ns)
}

// enqueue queues a local write to every peer that holds ns.
func (e *Engine) enqueue(ns string, rec *storepb.LWWRecord) {
	e.push(outRecord{ns: ns, recs: []*storepb.LWWRecord{rec}, size: recordSize(rec.Key, rec.Value)})
}

// enqueueUnit queues the records of one batch write to every peer that
// holds ns, as one unit.
func (e *Engine) enqueueUnit(ns string, recs []*storepb.LWWRecord) {
	o := outRecord{ns: ns, recs: recs, unit: true}
	for _, r := range recs {
		o.size += recordSize(r.Key, r.Value)
	}
	e.push(o)
}

func (e *Engine) push(o outRecord) {
	if !e.started.Load() {
		return // anti-entropy carries writes made before Start
	}
	ids, all := e.holders(o.ns)
	for _, p := range *e.peerList.Load() {
		if all || slices.Contains(ids, p.id) {
			p.push(o)
		}
	}
}

func (p *peer) push(o outRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down || p.queued+o.size > p.e.cfg.QueueBytes {
		p.needsRepair = true
		p.e.st.dropped.Add(uint64(len(o.recs)))
		return
	}
	p.queue = append(p.queue, o)
	p.queued += o.size
	p.queuedRecs += len(o.recs)
	if len(p.queue) == 1 {
		signal(p.ready)
	}
	if p.queuedRecs >= p.e.cfg.MaxBatch {
		signal(p.full)
	}
}

// run is the peer's sender. It ends when the engine closes or the store
// leaves the peer set.
func (p *peer) run() {
	defer p.e.wg.Done()
	ctx := p.e.ctx
	retry := time.Duration(0)
	for {
		if p.isDown() {
			if !p.wait(retry, p.kick) {
				return
			}
			if err := p.probe(ctx); err != nil {
				retry = min(max(2*retry, minRetry), maxRetry)
				p.e.log.Debug("lww: peer unreachable", zap.Uint64("peer", p.id), zap.Error(err))
				continue
			}
			retry = 0
			p.e.log.Info("lww: peer reachable", zap.Uint64("peer", p.id))
			p.markUp()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-p.quit:
			return
		case <-p.ready:
		}
		// Linger for the flush interval unless a batch is full already.
		if !p.wait(p.e.cfg.FlushInterval, p.full) {
			return
		}
		out, n := p.take()
		if len(out) == 0 {
			continue
		}
		if err := p.send(ctx, out); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.e.log.Warn("lww: push failed; the peer will be repaired", zap.Uint64("peer", p.id),
				zap.Int("records", n), zap.Error(err))
			p.markDown(n)
			continue
		}
		p.e.st.pushed.Add(uint64(n))
		p.markUp()
	}
}

// wait waits for d or for early, and reports false if the sender must
// stop.
func (p *peer) wait(d time.Duration, early chan struct{}) bool {
	if d <= 0 {
		select {
		case <-p.e.ctx.Done():
			return false
		case <-p.quit:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.e.ctx.Done():
		return false
	case <-p.quit:
		return false
	case <-early:
	case <-t.C:
	}
	return true
}

func (p *peer) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// take empties the queue and returns what it held, and how many records.
func (p *peer) take() ([]outRecord, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out, n := p.queue, p.queuedRecs
	p.queue, p.queued, p.queuedRecs = nil, 0, 0
	// Drain a stale full signal, so the next batch lingers as it should.
	select {
	case <-p.full:
	default:
	}
	return out, n
}

// markDown drops the queue after a failed send of lost records.
func (p *peer) markDown(lost int) {
	p.mu.Lock()
	dropped := lost + p.queuedRecs
	p.queue, p.queued, p.queuedRecs = nil, 0, 0
	p.down = true
	p.needsRepair = true
	p.mu.Unlock()
	p.e.st.dropped.Add(uint64(dropped))
}

// markUp records a successful send and asks for the repair of whatever
// was dropped before it.
func (p *peer) markUp() {
	p.mu.Lock()
	p.down = false
	repair := p.needsRepair
	p.needsRepair = false
	p.mu.Unlock()
	if repair {
		p.e.wantAntiEntropy(p.id)
	}
}

// markNeedsRepair is called when a repair with the peer failed.
func (p *peer) markNeedsRepair() {
	p.mu.Lock()
	p.needsRepair = true
	p.mu.Unlock()
}

// probe sends an empty batch: it succeeds when the peer answers.
func (p *peer) probe(ctx context.Context) error {
	return p.stream(ctx, []*storepb.ReplicateBatch{{FromStore: p.e.cfg.StoreID}})
}

// send pushes records in batches of at most MaxBatch records and about
// MaxMessageBytes, or of one unit (a batch write) that is larger: a unit
// travels whole in one NamespaceRecords of its own.
func (p *peer) send(ctx context.Context, out []outRecord) error {
	var batches []*storepb.ReplicateBatch
	var cur *storepb.ReplicateBatch
	var n int
	var size int64
	groups := map[string]*storepb.NamespaceRecords{}
	for _, o := range out {
		full := n >= p.e.cfg.MaxBatch || size >= p.e.cfg.MaxMessageBytes
		if o.unit && n > 0 && (n+len(o.recs) > p.e.cfg.MaxBatch || size+o.size > p.e.cfg.MaxMessageBytes) {
			full = true // the unit does not fit beside what the batch holds
		}
		if cur == nil || full {
			cur = &storepb.ReplicateBatch{FromStore: p.e.cfg.StoreID}
			batches = append(batches, cur)
			clear(groups)
			n, size = 0, 0
		}
		n += len(o.recs)
		size += o.size
		if o.unit {
			cur.Namespaces = append(cur.Namespaces, &storepb.NamespaceRecords{Namespace: o.ns, Records: o.recs, Unit: true})
			continue
		}
		g := groups[o.ns]
		if g == nil {
			g = &storepb.NamespaceRecords{Namespace: o.ns}
			groups[o.ns] = g
			cur.Namespaces = append(cur.Namespaces, g)
		}
		g.Records = append(g.Records, o.recs...)
	}
	return p.stream(ctx, batches)
}

// stream sends batches on one Replicate stream and waits for the answer.
func (p *peer) stream(ctx context.Context, batches []*storepb.ReplicateBatch) error {
	// The peer set may have changed since the last refresh: send only to
	// a store that is in it now.
	client := p.e.cfg.Peers()[p.id]
	if client == nil {
		return errNotPeer
	}
	ctx, cancel := context.WithTimeout(ctx, p.e.cfg.RPCTimeout)
	defer cancel()
	s, err := client.Replicate(ctx)
	if err != nil {
		return err
	}
	for _, b := range batches {
		if err := s.Send(b); err != nil {
			if errors.Is(err, io.EOF) {
				// The peer ended the stream; CloseAndRecv has its reason.
				break
			}
			return err
		}
	}
	_, err = s.CloseAndRecv()
	return err
}

// PeerUp tells the engine that the store id is reachable again (or newly
// known): it probes it now and, once it answers, runs anti-entropy with
// it at once.
func (e *Engine) PeerUp(id uint64) {
	if e.enter() != nil {
		return
	}
	defer e.opMu.RUnlock()
	if !e.started.Load() {
		return
	}
	e.refreshPeers()
	e.peerMu.Lock()
	p := e.peers[id]
	e.peerMu.Unlock()
	if p != nil {
		signal(p.kick)
	}
	e.wantAntiEntropy(id)
}

// HandleReplicate serves StoreInternal.Replicate: it applies every batch
// of the stream (synced), then answers. A batch with a malformed record is
// refused whole (InvalidArgument); records of namespaces this store does
// not serve are ignored; records too far ahead of the clock are refused
// one by one and logged, except in a unit (a batch write), which is
// applied in one pebble batch and refused whole if one of its records is.
func (e *Engine) HandleReplicate(stream storepb.StoreInternal_ReplicateServer) error {
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&storepb.ReplicateDone{})
		}
		if err != nil {
			return err
		}
		if err := ValidateReplicateBatch(b); err != nil {
			e.log.Warn("lww: replicate batch refused", zap.Uint64("from", b.GetFromStore()), zap.Error(err))
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := e.applyReplicateBatch(b); err != nil {
			return rpcError(err)
		}
	}
}

func (e *Engine) applyReplicateBatch(b *storepb.ReplicateBatch) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.opMu.RUnlock()
	for _, nr := range b.Namespaces {
		if !e.cfg.Serving(nr.Namespace) {
			continue
		}
		if nr.Unit {
			if err := e.mergeUnit(nr.Namespace, nr.Records, b.FromStore); err != nil {
				return err
			}
			continue
		}
		if _, err := e.mergeRemote(nr.Namespace, nr.Records, true, b.FromStore); err != nil {
			return err
		}
	}
	return nil
}

// rpcError turns an engine error into a gRPC status.
func rpcError(err error) error {
	switch {
	case errors.Is(err, ErrClosed):
		return status.Error(codes.Unavailable, "store is shutting down: retry")
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, fmt.Sprint(err))
}
