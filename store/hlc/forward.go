package hlc

// Forward moves the clock to at least ts, however far ahead ts is. It is
// for timestamps the cluster has agreed on (a fence entry of a Raft log),
// which every later local timestamp must follow; timestamps received from
// another store go through Update, which refuses ones too far ahead.
func (c *Clock) Forward(ts Timestamp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts.Wall < c.wall || (ts.Wall == c.wall && ts.Logical <= c.logical) {
		return nil
	}
	return c.advanceLocked(ts.Wall, ts.Logical)
}
