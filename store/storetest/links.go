package storetest

// The faults of store-to-store links, for every store of a cluster: cut,
// lossy, duplicating or slow. Losses and duplicates are drawn from a seed,
// so a run can be replayed.

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rdb-project/rdb/store/transport"
)

// LinkFault is what happens on one link: cut, or each batch of messages
// lost or sent twice with a probability, and delayed.
type LinkFault struct {
	Cut   bool
	Loss  float64
	Dup   float64
	Delay time.Duration
}

// Links holds the fault of every link between a cluster's stores.
type Links struct {
	mu    sync.Mutex
	rng   *rand.Rand
	links map[[2]uint64]LinkFault
}

// NewLinks returns healthy links whose random faults come from seed.
func NewLinks(seed uint64) *Links {
	return &Links{rng: rand.New(rand.NewPCG(seed, 3)), links: map[[2]uint64]LinkFault{}}
}

// Set sets the fault of the link from -> to (store ids).
func (l *Links) Set(from, to uint64, f LinkFault) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.links[[2]uint64{from, to}] = f
}

// Isolate cuts every link to and from store id, among stores 1..n.
func (l *Links) Isolate(id uint64, n int) {
	for o := uint64(1); o <= uint64(n); o++ {
		if o != id {
			l.Set(id, o, LinkFault{Cut: true})
			l.Set(o, id, LinkFault{Cut: true})
		}
	}
}

// Heal makes every link healthy.
func (l *Links) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.links)
}

// From is store from's view of its outgoing links, for store.Config.
func (l *Links) From(from uint64) transport.Faults { return linksFrom{l, from} }

type linksFrom struct {
	l    *Links
	from uint64
}

// Link decides the fate of one send: the transport asks before every
// batch of Raft messages, snapshot and call.
func (f linksFrom) Link(to uint64) transport.LinkFault {
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	lf, ok := f.l.links[[2]uint64{f.from, to}]
	if !ok {
		return transport.LinkFault{}
	}
	out := transport.LinkFault{Partitioned: lf.Cut, Delay: lf.Delay}
	if lf.Loss > 0 && f.l.rng.Float64() < lf.Loss {
		out.Partitioned = true
	}
	if lf.Dup > 0 && f.l.rng.Float64() < lf.Dup {
		out.DupRate = 1
	}
	return out
}
