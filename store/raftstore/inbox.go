package raftstore

// The loop's queue of work: proposals, reads, messages and group changes
// are posted as functions and run at the start of the next round, in the
// order posted, so only the loop ever touches a RawNode.

import "sync"

// inbox is an unbounded queue of functions with a wake-up channel.
type inbox struct {
	mu    sync.Mutex
	fns   []item
	ready chan struct{}
}

// item is one queued function; create marks a creation of group, which
// the loop may batch with the creations next to it (lifecycle.go).
type item struct {
	fn     func()
	create bool
	group  uint64
}

func (ib *inbox) init() { ib.ready = make(chan struct{}, 1) }

func (ib *inbox) put(fn func()) { ib.putItem(item{fn: fn}) }

func (ib *inbox) putItem(it item) {
	ib.mu.Lock()
	ib.fns = append(ib.fns, it)
	ib.mu.Unlock()
	select {
	case ib.ready <- struct{}{}:
	default:
	}
}

func (ib *inbox) take() []item {
	ib.mu.Lock()
	fns := ib.fns
	ib.fns = nil
	ib.mu.Unlock()
	return fns
}
