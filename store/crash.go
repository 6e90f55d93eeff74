package store

// Kill: a crash, for fault-injection tests that run stores in-process.

// Kill stops the store as a crash looks to every other process: its
// connections drop at once, calls in flight get no answer, and it sends
// nothing more to other stores or to PD. crashed, if not nil, runs right
// after that cut, while the store's data is still open and may still be
// written: a test takes its crash image of the file system there (what was
// synced, and perhaps more, as after a power loss). Nothing the store does
// after the cut can reach anyone, so the image is a state a real crash
// could leave. Then the store releases everything, as Stop does, so that a
// test can open the image in the same process.
//
// Kill and Stop share one shutdown: whichever is called first wins.
func (s *Store) Kill(crashed func()) {
	s.once.Do(func() {
		s.cancel()
		if s.grpc != nil {
			s.grpc.Stop() // no graceful drain: answers not yet sent are lost
		}
		s.tr.Close()
		if s.pd != nil {
			s.pd.Close()
		}
		if crashed != nil {
			crashed()
		}
		s.wg.Wait()
		// The loop may have started snapshot sends after the first Close
		// (they fail at once); release waits for them before the DB goes.
		s.release()
		s.log.Info("store killed")
	})
}
