// Forward: moving the clock to a timestamp the cluster agreed on.

package hlc

// Forward moves the clock to at least ts, so that every later Now is after
// ts. It is for timestamps the cluster agreed on (a fence entry of a Raft
// log), which every later local timestamp must follow; timestamps received
// from another store go through Update.
//
// Agreement does not make a timestamp sane: a fence stamped by a store
// whose clock ran far ahead would otherwise drag this clock, and through
// it every clock that hears from this one, just as far. So Forward applies
// Update's check, which bounds how far an agreed timestamp may push a
// clock: it refuses, with an error wrapping ErrTooFarAhead and leaving the
// clock unchanged, a ts whose wall time is more than MaxOffset ahead of
// the physical clock. A caller that gets ErrTooFarAhead must wait for its
// physical clock (PhysicalNow) to come within MaxOffset of ts, and Forward
// again, before it stamps anything that must be after ts. Forward may also
// return the error of persisting a new upper bound.
func (c *Clock) Forward(ts Timestamp) error {
	if err := c.checkOffset("agreed timestamp", ts); err != nil {
		return err
	}
	return c.raise(ts)
}

// CheckAhead returns an error wrapping ErrTooFarAhead if ts is more than
// MaxOffset ahead of the physical clock, and moves nothing: for timestamps
// that arrive to be stored by the cluster rather than merged here (the
// records of a load), which no store's clock would have accepted.
func (c *Clock) CheckAhead(ts Timestamp) error { return c.checkOffset("timestamp", ts) }
