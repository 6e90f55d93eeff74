// Package modetable is a store's copy of the namespace -> mode table.
//
// Rows come from an authority (the static meta group or the placement
// driver) and are applied only if their version is newer than the row the
// store holds, whatever order they arrive in. Applying a row that changes
// a namespace's mode takes the namespace's write fence: raw writes hold it
// shared while they check the mode and write, so once a row is applied no
// write under the old mode is still in flight.
package modetable

import (
	"context"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/namespace"
)

// Authority is where the table's rows are decided: the meta group in
// static mode, the placement driver in PD mode.
type Authority interface {
	// Ensure returns a namespace's row, creating it with the default mode
	// (strong, from_default) if it does not exist.
	Ensure(ctx context.Context, ns string) (*storepb.NamespaceRecord, error)
	// SetMode sets a namespace's mode; changed is false when it already had
	// that mode and was configured.
	SetMode(ctx context.Context, ns, mode string, force bool) (rec *storepb.NamespaceRecord, changed bool, err error)
	// Stores lists every store of the cluster.
	Stores() []*storepb.StoreInfo
	// StoreAddr returns a store's address, if the cluster has the store:
	// what Stores says, without building the list.
	StoreAddr(id uint64) (string, bool)
	// CaughtUp reports whether the table is at least as new as what this
	// store had durably applied before it (re)started. Until then it
	// accepts no raw writes.
	CaughtUp() bool
}

// Table holds the rows a store has applied. Rows are immutable once
// stored: callers must not modify what Get and List return.
type Table struct {
	mu       sync.RWMutex
	rows     map[string]*storepb.NamespaceRecord
	byGroup  map[uint64]string
	eventual map[string]struct{} // the namespaces whose row says eventual
	fences   map[string]*sync.RWMutex
	changed  chan struct{} // closed and replaced on every change
	// waiting: the channels of WaitVersion callers, by namespace, closed
	// when its row changes (only its own waiters wake: a store creating
	// 1,000 namespaces a second has as many callers waiting at once).
	waiting  map[string][]chan struct{}
	onChange []func(old, cur *storepb.NamespaceRecord)
}

// New returns an empty table.
func New() *Table {
	return &Table{
		rows:     make(map[string]*storepb.NamespaceRecord),
		byGroup:  make(map[uint64]string),
		eventual: make(map[string]struct{}),
		fences:   make(map[string]*sync.RWMutex),
		changed:  make(chan struct{}),
		waiting:  make(map[string][]chan struct{}),
	}
}

// OnChange registers f to run after every applied row (old is nil for a
// new namespace). f runs on the applier's goroutine and must not block.
func (t *Table) OnChange(f func(old, cur *storepb.NamespaceRecord)) {
	t.mu.Lock()
	t.onChange = append(t.onChange, f)
	t.mu.Unlock()
}

// Get returns a namespace's row.
func (t *Table) Get(ns string) (*storepb.NamespaceRecord, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok := t.rows[ns]
	return r, ok
}

// NamespaceOfGroup returns the namespace whose Raft group is group.
func (t *Table) NamespaceOfGroup(group uint64) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ns, ok := t.byGroup[group]
	return ns, ok
}

// List returns every row, sorted by namespace.
func (t *Table) List() []*storepb.NamespaceRecord {
	out := t.Rows()
	slices.SortFunc(out, func(a, b *storepb.NamespaceRecord) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// Rows returns every row, in no order: cheaper than List with 100,000.
func (t *Table) Rows() []*storepb.NamespaceRecord {
	t.mu.RLock()
	out := make([]*storepb.NamespaceRecord, 0, len(t.rows))
	for _, r := range t.rows {
		out = append(out, r)
	}
	t.mu.RUnlock()
	return out
}

// Eventual returns, sorted, the namespaces whose row says eventual: the
// few among 100,000 strong ones, without visiting every row.
func (t *Table) Eventual() []string {
	t.mu.RLock()
	out := make([]string, 0, len(t.eventual))
	for ns := range t.eventual {
		out = append(out, ns)
	}
	t.mu.RUnlock()
	slices.Sort(out)
	return out
}

func (t *Table) fence(ns string) *sync.RWMutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.fences[ns]
	if f == nil {
		f = &sync.RWMutex{}
		t.fences[ns] = f
	}
	return f
}

// Apply stores rec if it is newer than the namespace's current row and
// reports whether it did. A row that changes the mode waits for raw writes
// in flight on the namespace to finish.
func (t *Table) Apply(rec *storepb.NamespaceRecord) bool {
	rec = proto.Clone(rec).(*storepb.NamespaceRecord)
	ns := rec.GetName()
	f := t.fence(ns)
	f.Lock()
	t.mu.Lock()
	old := t.rows[ns]
	if old != nil && old.GetVersion() >= rec.GetVersion() {
		t.mu.Unlock()
		f.Unlock()
		return false
	}
	t.rows[ns] = rec
	if g := rec.GetGroupId(); g != 0 {
		t.byGroup[g] = ns
	}
	if namespace.ModeOf(rec) == namespace.Eventual {
		t.eventual[ns] = struct{}{}
	} else {
		delete(t.eventual, ns)
	}
	close(t.changed)
	t.changed = make(chan struct{})
	for _, ch := range t.waiting[ns] {
		close(ch)
	}
	delete(t.waiting, ns)
	hooks := t.onChange
	t.mu.Unlock()
	f.Unlock()
	for _, h := range hooks {
		h(old, rec)
	}
	return true
}

// Writes enters the namespace's write fence shared: the row read while
// holding it stays current until unlock. Raw writes hold it while they
// check the mode and write.
func (t *Table) Writes(ns string) (unlock func()) {
	f := t.fence(ns)
	f.RLock()
	return f.RUnlock
}

// Changed returns a channel closed at the next change.
func (t *Table) Changed() <-chan struct{} {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.changed
}

// WaitVersion returns once the namespace's row has at least version, or
// when ctx ends.
func (t *Table) WaitVersion(ctx context.Context, ns string, version uint64) (*storepb.NamespaceRecord, error) {
	for {
		t.mu.Lock()
		if r, ok := t.rows[ns]; ok && r.GetVersion() >= version {
			t.mu.Unlock()
			return r, nil
		}
		ch := make(chan struct{})
		t.waiting[ns] = append(t.waiting[ns], ch)
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.mu.Lock()
			if w := slices.DeleteFunc(t.waiting[ns], func(c chan struct{}) bool { return c == ch }); len(w) > 0 {
				t.waiting[ns] = w
			} else {
				delete(t.waiting, ns)
			}
			t.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}
