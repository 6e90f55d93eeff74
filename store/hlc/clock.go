package hlc

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ErrTooFarAhead is returned (wrapped, with the numbers) by Update when a
// remote timestamp is more than the maximum offset ahead of the local
// physical clock. The clock does not move in that case.
var ErrTooFarAhead = errors.New("hlc: remote timestamp too far ahead of the local clock")

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
	// smaller of DefaultWindow and MaxOffset/2.
	Window time.Duration
}

// Clock is a hybrid logical clock. It is safe for concurrent use.
//
// Invariants, kept under mu:
//   - the state (wall, logical) is at least every timestamp handed out or
//     received, so Now always returns a greater one;
//   - wall < upper, and upper is durable: every timestamp handed out before
//     a crash has a wall time below the bound a restarted clock starts at.
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
		cfg.Window = min(DefaultWindow, cfg.MaxOffset/2)
	}
	if cfg.Physical == nil {
		cfg.Physical = func() int64 { return time.Now().UnixNano() }
	}
	if cfg.Persisted < 0 {
		return nil, fmt.Errorf("hlc: negative persisted bound %d", cfg.Persisted)
	}
	return &Clock{
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
	}, nil
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
// It returns an error only when persisting a new upper bound fails; the
// clock then hands nothing out and the next call tries again.
func (c *Clock) Now() (Timestamp, error) {
	pt := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	wall, logical := c.wall, c.logical
	switch {
	case pt > wall:
		wall, logical = pt, 0
	case logical == math.MaxUint32:
		wall, logical = wall+1, 0
	default:
		logical++
	}
	if err := c.advanceLocked(wall, logical); err != nil {
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
	pt := c.physical()
	if remote.Wall > pt && remote.Wall-pt > c.maxOffset {
		return fmt.Errorf("%w: remote %s is %v ahead of physical time %d (max offset %v)",
			ErrTooFarAhead, remote, time.Duration(remote.Wall-pt), pt, time.Duration(c.maxOffset))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if remote.Wall < c.wall || (remote.Wall == c.wall && remote.Logical <= c.logical) {
		return nil
	}
	return c.advanceLocked(remote.Wall, remote.Logical)
}

// advanceLocked sets the clock state, first persisting a new upper bound
// when wall reaches the durable one. Holding mu while Persist runs makes
// every caller wait for the bound, which happens once per window.
func (c *Clock) advanceLocked(wall int64, logical uint32) error {
	if wall >= c.upper {
		upper := wall + c.window
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
