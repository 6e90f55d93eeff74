// The Clock: how it hands out timestamps (Now), takes in other stores'
// (Update), and keeps a durable upper bound of its wall time so a restart
// never goes backwards.

package hlc

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ErrTooFarAhead is returned (wrapped, with the numbers) by Update and
// Forward when a timestamp is more than the maximum offset ahead of the
// local physical clock. The clock does not move in that case.
var ErrTooFarAhead = errors.New("hlc: timestamp too far ahead of the local clock")

// ErrExhausted is returned by Now when the clock's state is the largest
// timestamp there is, (math.MaxInt64, math.MaxUint32): no later one exists,
// and wrapping around would hand out one before all the others. It is also
// returned by a clock restarted from a bound of math.MaxInt64, which cannot
// prove its next timestamp is after those handed out before the restart
// (see advanceLocked). Wall times that large are in the year 2262, so only
// a clock driven there by bad input gets this.
var ErrExhausted = errors.New("hlc: clock exhausted: no timestamp after wall math.MaxInt64, logical math.MaxUint32")

const (
	// DefaultMaxOffset is the default Config.MaxOffset.
	DefaultMaxOffset = 500 * time.Millisecond
	// DefaultWindow is the default Config.Window, unless half of MaxOffset
	// is smaller.
	DefaultWindow = 250 * time.Millisecond
)

// Config configures a Clock.
type Config struct {
	// StoreID is stamped into every Timestamp the clock hands out. It must
	// be non-zero and unique in the cluster.
	StoreID uint64
	// MaxOffset is how far a remote timestamp may be ahead of the local
	// physical clock before Update refuses it. Zero means DefaultMaxOffset.
	MaxOffset time.Duration
	// Physical returns the physical time in nanoseconds since the Unix
	// epoch. Nil means time.Now().UnixNano().
	Physical func() int64
	// Persisted is the upper bound of wall time loaded from disk at
	// start-up (zero on a new store): the clock starts above it.
	Persisted int64
	// Persist durably stores a new upper bound of wall time. The clock
	// calls it, and waits for it, before its state reaches the bound last
	// stored. Nil means the clock is not persisted: it is then monotonic
	// only for the life of the process (tests).
	Persist func(upper int64) error
	// Window is how far ahead of the clock a new upper bound is placed, so
	// Persist runs about once per Window of wall time rather than once per
	// call. A restarted clock starts at the bound, up to Window ahead of
	// physical time, and other stores refuse timestamps more than their
	// MaxOffset ahead: keep Window well below MaxOffset. Zero means the
	// smaller of DefaultWindow and MaxOffset/2, but at least 1ns.
	Window time.Duration
}

// Clock is a hybrid logical clock. It is safe for concurrent use.
//
// Invariants, kept under mu:
//   - the state (wall, logical) is at least every timestamp handed out or
//     received, so Now always returns a greater one;
//   - wall < upper, and upper is durable: every timestamp handed out before
//     a crash has a wall time below the bound a restarted clock starts at.
//     The one exception is the top of the range: upper saturates at
//     math.MaxInt64 and wall may reach it, so a clock restarted from that
//     bound starts exhausted rather than risk repeating a timestamp.
type Clock struct {
	storeID   uint64
	maxOffset int64
	window    int64
	physical  func() int64
	persist   func(int64) error

	mu      sync.Mutex
	wall    int64
	logical uint32
	upper   int64
}

// New returns a Clock configured by cfg.
func New(cfg Config) (*Clock, error) {
	if cfg.StoreID == 0 {
		return nil, errors.New("hlc: StoreID must be non-zero")
	}
	if cfg.MaxOffset < 0 || cfg.Window < 0 {
		return nil, fmt.Errorf("hlc: negative MaxOffset (%v) or Window (%v)", cfg.MaxOffset, cfg.Window)
	}
	if cfg.MaxOffset == 0 {
		cfg.MaxOffset = DefaultMaxOffset
	}
	if cfg.Window == 0 {
		// At least 1ns: with a zero window the new bound would equal the
		// wall time it covers, and a restart from it could repeat
		// timestamps handed out at that wall time (MaxOffset/2 is zero
		// for a MaxOffset of 1ns).
		cfg.Window = max(1, min(DefaultWindow, cfg.MaxOffset/2))
	}
	if cfg.Physical == nil {
		cfg.Physical = func() int64 { return time.Now().UnixNano() }
	}
	if cfg.Persisted < 0 {
		return nil, fmt.Errorf("hlc: negative persisted bound %d", cfg.Persisted)
	}
	c := &Clock{
		storeID:   cfg.StoreID,
		maxOffset: int64(cfg.MaxOffset),
		window:    int64(cfg.Window),
		physical:  cfg.Physical,
		persist:   cfg.Persist,
		// Starting at (Persisted, 0) puts every timestamp this clock hands
		// out above every one handed out before the restart, whose wall
		// times were all below Persisted.
		wall:  cfg.Persisted,
		upper: cfg.Persisted,
	}
	if cfg.Persisted == math.MaxInt64 {
		// A saturated bound does not bound the wall times handed out
		// before the restart: they may equal it, with any logical part.
		// Only the largest state is safely after all of them, and it
		// leaves nothing to hand out.
		c.logical = math.MaxUint32
	}
	return c, nil
}

// StoreID returns the store id the clock stamps.
func (c *Clock) StoreID() uint64 { return c.storeID }

// MaxOffset returns the maximum offset Update tolerates.
func (c *Clock) MaxOffset() time.Duration { return time.Duration(c.maxOffset) }

// PhysicalNow returns the physical clock reading in nanoseconds, without
// moving the clock.
func (c *Clock) PhysicalNow() int64 { return c.physical() }

// Now returns a timestamp greater than every one the clock has handed out
// or received, this process or any earlier one that persisted its bound.
// It returns an error when persisting a new upper bound fails (the clock
// then hands nothing out and the next call tries again), and ErrExhausted
// when the clock has reached the largest timestamp there is.
func (c *Clock) Now() (Timestamp, error) { return c.NowRange(1) }

// NowRange returns the first of n consecutive timestamps, all greater
// than every one the clock has handed out or received: the i-th (from 0)
// is the first with Logical+i, at the same wall time. The clock moves past
// the last, so none of them is handed out again. n = 0 is taken as 1.
// Errors are Now's.
func (c *Clock) NowRange(n uint32) (Timestamp, error) {
	span := max(n, 1) - 1
	pt := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	wall, logical := c.wall, c.logical
	switch {
	case pt > wall:
		wall, logical = pt, 0
	case logical >= math.MaxUint32-span:
		// The range would run past the largest logical part: start it at
		// the next wall time, where all of it fits.
		if wall == math.MaxInt64 {
			return Timestamp{}, ErrExhausted
		}
		wall, logical = wall+1, 0
	default:
		logical++
	}
	if err := c.advanceLocked(wall, logical+span); err != nil {
		return Timestamp{}, err
	}
	return Timestamp{Wall: wall, Logical: logical, StoreID: c.storeID}, nil
}

// Update moves the clock forward to remote if remote is ahead of it, so
// that every later Now is after remote (the HLC receive rule). It refuses,
// with an error wrapping ErrTooFarAhead and leaving the clock unchanged, a
// remote wall time more than MaxOffset ahead of the physical clock. It may
// also return the error of persisting a new upper bound.
func (c *Clock) Update(remote Timestamp) error {
	if err := c.checkOffset("remote", remote); err != nil {
		return err
	}
	return c.raise(remote)
}

// checkOffset returns an error wrapping ErrTooFarAhead when ts's wall time
// is more than MaxOffset ahead of the physical clock; what names ts in it.
func (c *Clock) checkOffset(what string, ts Timestamp) error {
	pt := c.physical()
	if ts.Wall <= pt {
		return nil
	}
	// ts.Wall > pt, so the distance fits in a uint64 even where
	// ts.Wall-pt overflows an int64 (a negative physical reading); an
	// overflowed, negative distance would pass the check.
	ahead := uint64(ts.Wall) - uint64(pt)
	if ahead <= uint64(c.maxOffset) {
		return nil
	}
	return fmt.Errorf("%w: %s %s is %v ahead of physical time %d (max offset %v)",
		ErrTooFarAhead, what, ts, time.Duration(min(ahead, math.MaxInt64)), pt, time.Duration(c.maxOffset))
}

// raise moves the clock state up to ts if ts is ahead of it.
func (c *Clock) raise(ts Timestamp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts.Wall < c.wall || (ts.Wall == c.wall && ts.Logical <= c.logical) {
		return nil
	}
	return c.advanceLocked(ts.Wall, ts.Logical)
}

// advanceLocked sets the clock state, first persisting a new upper bound
// when wall reaches the durable one. Holding mu while Persist runs makes
// every caller wait for the bound, which happens once per window.
//
// The bound saturates at math.MaxInt64: wall+window would wrap to a
// negative bound, which DecodeUpper rejects, so the store would not start
// again. Once the saturated bound is durable there is nothing higher to
// persist, and wall may reach it; New treats a clock restarted from it as
// exhausted.
func (c *Clock) advanceLocked(wall int64, logical uint32) error {
	if wall >= c.upper && c.upper < math.MaxInt64 {
		upper := addSat(wall, c.window)
		if c.persist != nil {
			if err := c.persist(upper); err != nil {
				return fmt.Errorf("hlc: persist upper bound %d: %w", upper, err)
			}
		}
		c.upper = upper
	}
	c.wall, c.logical = wall, logical
	return nil
}

// addSat returns a+b, or math.MaxInt64 where that overflows; b >= 0.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
