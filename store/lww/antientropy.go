package lww

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
)

// Anti-entropy: a store fetches a peer's bucket digests of a namespace,
// and for the buckets that differ sends Repair requests carrying all its
// records of those buckets. The peer merges them and answers with its
// records of those buckets that the caller lacks or holds older, which the
// caller merges. After one exchange both hold, for every key of those
// buckets, the newer of the two versions; the digests then match unless
// new writes arrived meanwhile. Every store runs it with every peer, so
// each direction is covered twice.
//
// Message sizes: a request carries whole buckets, at most
// maxBucketsPerRepair of them and about MaxMessageBytes. A bucket larger
// than that on its own is sent in push-only requests (no buckets named:
// the peer merges and answers nothing), and the records the peer holds
// newer in it come over when the peer runs anti-entropy with this store.
// An answer is cut at about MaxMessageBytes; what is left differs in the
// next comparison, and up to maxRepairRounds comparisons run per round.
const (
	maxBucketsPerRepair = 16
	maxRepairRounds     = 3
	// scanBudgetFactor × MaxMessageBytes of records is collected by one
	// scan of a namespace.
	scanBudgetFactor = 4
)

// wantAntiEntropy asks for anti-entropy with peer id as soon as possible.
func (e *Engine) wantAntiEntropy(id uint64) {
	e.aeMu.Lock()
	e.aeWanted[id] = true
	e.aeMu.Unlock()
	signal(e.aeWake)
}

func (e *Engine) jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

// antiEntropyLoop runs a round with every peer every AntiEntropyInterval
// (jittered, so stores do not all start together) and one with a peer
// whenever it is asked for.
func (e *Engine) antiEntropyLoop() {
	defer e.wg.Done()
	t := time.NewTimer(e.jitter(e.cfg.AntiEntropyInterval))
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.aeWake:
			e.aeMu.Lock()
			ids := make([]uint64, 0, len(e.aeWanted))
			for id := range e.aeWanted {
				ids = append(ids, id)
			}
			clear(e.aeWanted)
			e.aeMu.Unlock()
			slices.Sort(ids)
			for _, id := range ids {
				e.antiEntropyWith(id, true)
			}
		case <-t.C:
			ids := make([]uint64, 0)
			for id := range e.cfg.Peers() {
				if id != e.cfg.StoreID {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			for _, id := range ids {
				e.antiEntropyWith(id, false)
			}
			t.Reset(e.jitter(e.cfg.AntiEntropyInterval))
		}
	}
}

// antiEntropyWith runs one round with peer id over every namespace
// served. A full round compares the records as they are; otherwise as they
// were AntiEntropySettle ago, leaving newer writes to the pushes (and to a
// later round).
func (e *Engine) antiEntropyWith(id uint64, full bool) {
	client := e.cfg.Peers()[id]
	if client == nil || id == e.cfg.StoreID {
		return
	}
	if e.enter() != nil {
		return
	}
	defer e.opMu.RUnlock()
	start := time.Now()
	repaired := 0
	for _, ns := range e.namespaces() {
		if ids, all := e.holders(ns); !all && !slices.Contains(ids, id) {
			continue
		}
		n, err := e.syncNamespace(e.ctx, id, client, ns, full)
		repaired += n
		if err != nil {
			if e.ctx.Err() == nil {
				e.log.Warn("lww: anti-entropy failed", zap.Uint64("peer", id), zap.String("ns", ns), zap.Error(err))
			}
			e.peerMu.Lock()
			p := e.peers[id]
			e.peerMu.Unlock()
			if p != nil {
				p.markNeedsRepair()
			}
			return
		}
	}
	e.st.rounds.Add(1)
	if repaired > 0 {
		e.log.Info("lww: anti-entropy repaired records", zap.Uint64("peer", id), zap.Int("records", repaired),
			zap.Duration("took", time.Since(start)))
	}
}

// syncNamespace makes ns converge with one peer and returns how many
// records changed on either side.
func (e *Engine) syncNamespace(ctx context.Context, id uint64, client storepb.StoreInternalClient, ns string, full bool) (int, error) {
	repaired := 0
	for range maxRepairRounds {
		var before int64
		if !full {
			before = e.clock.PhysicalNow() - int64(e.cfg.AntiEntropySettle)
		}
		cctx, cancel := context.WithTimeout(ctx, e.cfg.RPCTimeout)
		resp, err := client.Digest(cctx, &storepb.DigestRequest{Namespace: ns, BeforeWall: before})
		cancel()
		if err != nil {
			return repaired, fmt.Errorf("digest: %w", err)
		}
		if !resp.Serving {
			return repaired, nil // the peer does not serve ns (yet): nothing to exchange
		}
		if len(resp.Buckets) != NumBuckets {
			return repaired, fmt.Errorf("peer sent %d buckets, want %d", len(resp.Buckets), NumBuckets)
		}
		// Compare at the cutoff the peer used; if this store cannot, both
		// compare the records as they are.
		st := e.state(ns)
		local, cut := st.digestsBefore(resp.BeforeWall)
		if cut != resp.BeforeWall {
			full = true
			continue
		}
		var diff []int
		for b := range NumBuckets {
			if local[b] != resp.Buckets[b] {
				diff = append(diff, b)
			}
		}
		if len(diff) == 0 {
			return repaired, nil
		}
		n, err := e.repairBuckets(ctx, client, ns, st, diff)
		repaired += n
		if err != nil {
			return repaired, err
		}
	}
	return repaired, nil
}

// repairGroup is the buckets of one Repair request and this store's
// records in them.
type repairGroup struct {
	buckets  []uint32
	recs     []*storepb.LWWRecord
	bytes    int64
	pushOnly bool // too large for one request: pushed in parts, no answer
}

// repairBuckets exchanges the records of the buckets in diff with a peer.
func (e *Engine) repairBuckets(ctx context.Context, client storepb.StoreInternalClient, ns string, st *nsState, diff []int) (int, error) {
	limit := e.cfg.MaxMessageBytes
	// Plan: whole buckets per request, by the sizes the digests track.
	var groups []*repairGroup
	var cur *repairGroup
	var curBytes int64
	for _, b := range diff {
		size := st.bytes[b].Load()
		if cur == nil || len(cur.buckets) >= maxBucketsPerRepair || (len(cur.buckets) > 0 && curBytes+size > limit) {
			cur = &repairGroup{}
			groups = append(groups, cur)
			curBytes = 0
		}
		cur.buckets = append(cur.buckets, uint32(b))
		curBytes += size
	}
	repaired := 0
	for len(groups) > 0 {
		// One scan of ns collects the records of as many groups as fit the
		// scan budget (at least one).
		var pass []*repairGroup
		var passBytes int64
		for len(groups) > 0 && (len(pass) == 0 || passBytes < scanBudgetFactor*limit) {
			g := groups[0]
			groups = groups[1:]
			pass = append(pass, g)
			for _, b := range g.buckets {
				passBytes += st.bytes[b].Load()
			}
		}
		n, err := e.repairPass(ctx, client, ns, pass)
		repaired += n
		if err != nil {
			return repaired, err
		}
	}
	return repaired, nil
}

// repairPass collects the records of the groups' buckets in one scan and
// sends one Repair request per group.
func (e *Engine) repairPass(ctx context.Context, client storepb.StoreInternalClient, ns string, pass []*repairGroup) (int, error) {
	limit := e.cfg.MaxMessageBytes
	var groupOf [NumBuckets]*repairGroup
	for _, g := range pass {
		for _, b := range g.buckets {
			groupOf[b] = g
		}
	}
	repaired := 0
	prefix := keys.LWWPrefix(ns)
	err := e.iterate(nsBounds(ns), func(key []byte, r record) error {
		k := key[len(prefix):]
		g := groupOf[bucketOf(k)]
		if g == nil {
			return nil
		}
		size := recordSize(k, r.value)
		if len(g.recs) > 0 && g.bytes+size > limit+limit/2 {
			// The group grew past what one request should carry: push
			// what it has and carry on.
			g.pushOnly = true
			n, err := e.sendRepair(ctx, client, ns, nil, g.recs)
			repaired += n
			if err != nil {
				return err
			}
			g.recs, g.bytes = nil, 0
		}
		g.recs = append(g.recs, r.toProto(k))
		g.bytes += size
		return nil
	})
	if err != nil {
		return repaired, err
	}
	for _, g := range pass {
		buckets := g.buckets
		if g.pushOnly {
			if len(g.recs) == 0 {
				continue
			}
			buckets = nil
		}
		n, err := e.sendRepair(ctx, client, ns, buckets, g.recs)
		repaired += n
		if err != nil {
			return repaired, err
		}
	}
	return repaired, nil
}

// sendRepair sends one Repair request and merges the answer.
func (e *Engine) sendRepair(ctx context.Context, client storepb.StoreInternalClient, ns string, buckets []uint32, recs []*storepb.LWWRecord) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.RPCTimeout)
	defer cancel()
	e.st.repairSent.Add(uint64(len(recs)))
	resp, err := client.Repair(cctx, &storepb.RepairRequest{
		FromStore: e.cfg.StoreID,
		Namespace: ns,
		Buckets:   buckets,
		Records:   recs,
	})
	if err != nil {
		return 0, fmt.Errorf("repair: %w", err)
	}
	if len(resp.Records) == 0 {
		return 0, nil
	}
	if err := validRecords(ns, resp.Records); err != nil {
		return 0, fmt.Errorf("repair answer: %w", err)
	}
	n, err := e.mergeRemote(ns, resp.Records, true, 0)
	e.st.repaired.Add(uint64(n))
	return n, err
}

// HandleDigest serves StoreInternal.Digest: the bucket digests of a
// namespace, or serving=false if this store does not serve it.
func (e *Engine) HandleDigest(ctx context.Context, req *storepb.DigestRequest) (*storepb.DigestResponse, error) {
	if err := validNamespace(req.GetNamespace()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := e.enter(); err != nil {
		return nil, rpcError(err)
	}
	defer e.opMu.RUnlock()
	if !e.cfg.Serving(req.Namespace) {
		return &storepb.DigestResponse{Serving: false}, nil
	}
	buckets, cut := make([]uint64, NumBuckets), int64(0)
	if st := e.lookup(req.Namespace); st != nil {
		buckets, cut = st.digestsBefore(req.BeforeWall)
	}
	return &storepb.DigestResponse{Buckets: buckets, Serving: true, BeforeWall: cut}, nil
}

// HandleRepair serves StoreInternal.Repair: it merges the caller's records
// (synced), then answers with this store's records of the named buckets
// that the caller lacks or holds in an older version, up to about
// MaxMessageBytes. A request naming no bucket is a push: it is merged and
// answered with nothing. Tombstones older than the grace are not sent.
func (e *Engine) HandleRepair(ctx context.Context, req *storepb.RepairRequest) (*storepb.RepairResponse, error) {
	ns := req.GetNamespace()
	if err := validRecords(ns, req.GetRecords()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var want [NumBuckets]bool
	for _, b := range req.Buckets {
		if b >= NumBuckets {
			return nil, status.Errorf(codes.InvalidArgument, "bucket %d out of range [0, %d)", b, NumBuckets)
		}
		want[b] = true
	}
	if err := e.enter(); err != nil {
		return nil, rpcError(err)
	}
	defer e.opMu.RUnlock()
	if !e.cfg.Serving(ns) {
		return &storepb.RepairResponse{}, nil
	}
	n, err := e.mergeRemote(ns, req.Records, true, req.FromStore)
	e.st.repaired.Add(uint64(n))
	if err != nil {
		return nil, rpcError(err)
	}
	if len(req.Buckets) == 0 {
		return &storepb.RepairResponse{}, nil
	}
	theirs := make(map[string]record, len(req.Records))
	for _, r := range req.Records {
		theirs[string(r.Key)] = fromProto(r)
	}
	cutoff := e.clock.PhysicalNow() - int64(e.cfg.TombstoneGrace)
	prefix := keys.LWWPrefix(ns)
	var out []*storepb.LWWRecord
	var size int64
	err = e.iterate(nsBounds(ns), func(key []byte, r record) error {
		k := key[len(prefix):]
		if !want[bucketOf(k)] {
			return nil
		}
		if t, ok := theirs[string(k)]; ok && compareRecords(r, t) <= 0 {
			return nil
		}
		if r.tombstone && r.ts.Wall < cutoff {
			return nil
		}
		out = append(out, r.toProto(k))
		size += recordSize(k, r.value)
		if size >= e.cfg.MaxMessageBytes {
			return errStop
		}
		return nil
	})
	if err != nil {
		return nil, rpcError(err)
	}
	e.st.repairSent.Add(uint64(len(out)))
	return &storepb.RepairResponse{Records: out}, nil
}

// Sync makes ns converge with store id once, in full, and fails if the
// peer does not serve ns: a store filling a new replica needs a peer that
// has its records.
func (e *Engine) Sync(ctx context.Context, id uint64, ns string) error {
	client, err := e.servingPeer(ctx, id, ns)
	if err != nil {
		return err
	}
	defer e.opMu.RUnlock()
	_, err = e.syncNamespace(ctx, id, client, ns, true)
	return err
}

// servingPeer enters the engine (the caller leaves it: e.opMu.RUnlock)
// and returns store id's client once the peer says it serves ns.
func (e *Engine) servingPeer(ctx context.Context, id uint64, ns string) (storepb.StoreInternalClient, error) {
	if err := validNamespace(ns); err != nil {
		return nil, err
	}
	client := e.cfg.Peers()[id]
	if client == nil || id == e.cfg.StoreID {
		return nil, fmt.Errorf("lww: no peer %d", id)
	}
	if err := e.enter(); err != nil {
		return nil, err
	}
	if err := peerServes(ctx, client, id, ns, e.cfg.RPCTimeout); err != nil {
		e.opMu.RUnlock()
		return nil, err
	}
	return client, nil
}

// peerServes asks store id whether it serves ns.
func peerServes(ctx context.Context, client storepb.StoreInternalClient, id uint64, ns string, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := client.Digest(cctx, &storepb.DigestRequest{Namespace: ns})
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if !resp.GetServing() {
		return fmt.Errorf("store %d does not serve %q", id, ns)
	}
	return nil
}

// HasRecords reports whether this store holds any record of ns.
func (e *Engine) HasRecords(ns string) (bool, error) {
	it, err := e.db.NewIter(nsBounds(ns))
	if err != nil {
		return false, err
	}
	defer it.Close()
	return it.First(), it.Error()
}

// Handover pushes every record of ns this store holds to store id, which
// merges them (synced), and fails unless the peer served ns from before
// the first push until after the last: a store that no longer holds ns
// drops its records only once a replica has them all.
func (e *Engine) Handover(ctx context.Context, id uint64, ns string) error {
	client, err := e.servingPeer(ctx, id, ns)
	if err != nil {
		return err
	}
	defer e.opMu.RUnlock()
	var batch []*storepb.LWWRecord
	var size int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := e.sendRepair(ctx, client, ns, nil, batch); err != nil {
			return err
		}
		batch, size = nil, 0
		return nil
	}
	err = e.Dump(ns, func(recs []*storepb.LWWRecord) error {
		for _, r := range recs {
			batch = append(batch, r)
			size += recordSize(r.GetKey(), r.GetValue())
			if size >= e.cfg.MaxMessageBytes/2 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	return peerServes(ctx, client, id, ns, e.cfg.RPCTimeout)
}
