package store

// Kill: a crash, for fault-injection tests that run stores in-process.

import "go.uber.org/zap"

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
		if c, ok := s.auth.(interface{ close() }); ok {
			c.close()
		}
		if crashed != nil {
			crashed()
		}
		s.wg.Wait()
		s.raft.Stop()
		// The loop may have started snapshot sends after the first Close
		// (they fail at once); wait for them before the DB goes away.
		s.tr.Close()
		_ = s.lww.Close()
		if err := s.db.Close(); err != nil {
			s.log.Warn("close db after kill", zap.Error(err))
		}
		s.log.Info("store killed")
	})
}
