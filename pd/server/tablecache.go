package server

// The leader's copy of the mode table, kept by a watch. The loops that look
// at every namespace (the scheduler every second, the switch driver every
// quarter second, group formation) read it rather than range over 100,000
// rows of etcd and decode each. It may lag etcd by a watch delivery: every
// write still goes through updateNamespace, which reads its row from etcd
// and writes only if the row did not change, and ListNamespaces still reads
// etcd, so that a client reads its own writes.

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/modeswitch"
)

type tableCache struct {
	mu   sync.RWMutex
	rev  int64                      // 0 until loaded
	recs []*storepb.NamespaceRecord // by name; each is never modified, only replaced
	// advanced is closed (and replaced) whenever rev moves.
	advanced chan struct{}
	// wrote is the revision of this term's last write of a row: a read
	// waits for the cache to reach it, so that the term reads its writes.
	wrote atomic.Int64
	// feed names the rows changed since the switch driver last looked.
	feed modeswitch.Feed
}

func newTableCache() *tableCache { return &tableCache{advanced: make(chan struct{})} }

// records returns the table (by name) and the revision it is at, once
// loaded and at or past this term's last write. The slice is the caller's;
// the records are shared and must not be modified.
func (c *tableCache) records(ctx context.Context) ([]*storepb.NamespaceRecord, int64, error) {
	want := max(c.wrote.Load(), 1)
	for {
		c.mu.RLock()
		rev, advanced := c.rev, c.advanced
		if rev >= want {
			defer c.mu.RUnlock()
			return slices.Clone(c.recs), c.rev, nil
		}
		c.mu.RUnlock()
		select {
		case <-advanced:
		case <-ctx.Done():
			return nil, 0, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// advanceLocked moves the cache to revision rev.
func (c *tableCache) advanceLocked(rev int64) {
	if rev > c.rev {
		c.rev = rev
		close(c.advanced)
		c.advanced = make(chan struct{})
	}
}

// written records a write of a row at revision rev.
func (c *tableCache) written(rev int64) {
	for {
		cur := c.wrote.Load()
		if rev <= cur || c.wrote.CompareAndSwap(cur, rev) {
			return
		}
	}
}

func byName(a *storepb.NamespaceRecord, name string) int { return cmp.Compare(a.GetName(), name) }

// put sets one row, if newer than the cached one.
func (c *tableCache) put(rec *storepb.NamespaceRecord) {
	i, found := slices.BinarySearchFunc(c.recs, rec.GetName(), byName)
	switch {
	case !found:
		c.recs = slices.Insert(c.recs, i, rec)
	case c.recs[i].GetVersion() < rec.GetVersion():
		c.recs[i] = rec
	default:
		return
	}
	c.feed.Add(rec)
}

func (c *tableCache) delete(name string) {
	if i, found := slices.BinarySearchFunc(c.recs, name, byName); found {
		c.recs = slices.Delete(c.recs, i, i+1)
		c.feed.Lost()
	}
}

// runTableCache keeps c until ctx ends: it loads the table, then follows its
// changes, and loads it again whenever the watch breaks.
func (s *Server) runTableCache(ctx context.Context, c *tableCache) {
	for ctx.Err() == nil {
		recs, rev, err := s.readTable(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.lg.Warn("table cache: read namespaces", zap.Error(err))
			}
			select {
			case <-ctx.Done():
			case <-s.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		slices.SortFunc(recs, func(a, b *storepb.NamespaceRecord) int { return cmp.Compare(a.GetName(), b.GetName()) })
		c.mu.Lock()
		c.recs = recs
		c.advanceLocked(rev)
		c.mu.Unlock()
		c.feed.Lost() // loaded again: what changed meanwhile is not known
		s.followTable(ctx, c, rev+1)
	}
}

// followTable applies the table's changes from revision from until the
// watch ends.
func (s *Server) followTable(ctx context.Context, c *tableCache, from int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range s.client.Watch(wctx, namespacePrefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify()) {
		if err := wr.Err(); err != nil {
			if ctx.Err() == nil {
				s.lg.Info("table cache: the watch ended; loading the table again", zap.Error(err))
			}
			return
		}
		c.mu.Lock()
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				if name, ok := namespaceOfKey(string(ev.Kv.Key)); ok {
					c.delete(name)
				}
				continue
			}
			rec, err := decodeNamespace(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
			if err != nil {
				s.lg.Error("skipping an undecodable namespace row", zap.Error(err))
				continue
			}
			c.put(rec)
		}
		c.advanceLocked(wr.Header.Revision)
		c.mu.Unlock()
	}
}
