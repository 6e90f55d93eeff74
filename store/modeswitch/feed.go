package modeswitch

import (
	"sync"

	"github.com/rdb-project/rdb/proto/storepb"
)

// FeedLimit bounds the rows a Feed holds: past it (a store that does not
// run the driver, or a source that fell far behind), it keeps none and
// says so, and the driver reads the whole table.
const FeedLimit = 4096

// Feed collects the rows changed since the switch driver last took them:
// what a Cluster's Changes returns. The zero Feed is ready to use.
type Feed struct {
	mu       sync.Mutex
	recs     map[string]*storepb.NamespaceRecord
	overflow bool
}

// Add records a changed row.
func (f *Feed) Add(rec *storepb.NamespaceRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.overflow {
		return
	}
	if f.recs == nil {
		f.recs = make(map[string]*storepb.NamespaceRecord)
	}
	if len(f.recs) >= FeedLimit {
		f.recs, f.overflow = nil, true
		return
	}
	f.recs[rec.GetName()] = rec
}

// Lost says that rows changed which the feed cannot name (a row deleted,
// a table loaded again): the next Take is not ok.
func (f *Feed) Lost() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs, f.overflow = nil, true
}

// Take returns, and forgets, the rows recorded since the last call; ok is
// false if some could not be kept.
func (f *Feed) Take() (recs []*storepb.NamespaceRecord, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rec := range f.recs {
		recs = append(recs, rec)
	}
	ok = !f.overflow
	f.recs, f.overflow = nil, false
	return recs, ok
}
