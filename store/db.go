package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Memtables: what the store's writes cost in memory before they are
// flushed. Writes stall once memTableStopWrites memtables wait for a flush,
// so at most about (memTableStopWrites+1) * memTableSize (80 MiB) is held,
// one more kept for reuse included. The binaries are built without cgo, so
// memtables live on the Go heap, and the collector lets the heap grow to
// twice what is live (GOGC=100): every memtable byte costs two of RSS. With
// 64 MiB memtables a store writing 1 MiB values held 320 MiB of them and
// peaked above 600 MiB RSS; at 16 MiB it peaks under 300 MiB. The price is
// more, smaller flushes: back to back, 1 MiB values were written about 15%
// slower (34 against 40 MiB/s); a catch-up by snapshot was as fast.
const (
	memTableSize       = 16 << 20
	memTableStopWrites = 4
	// blockCacheSize is pebble's block cache. Its default (8 MiB) held too
	// few blocks for a store under load: the reads every CAS and every
	// eventual write make (the current version, the current record) missed
	// it and read and decompressed index blocks again, 12% of a follower's
	// CPU under 64 clients' CAS.
	blockCacheSize = 64 << 20
)

// openDB opens the store's one pebble DB: memtables of a bounded total
// size (above), bloom filters and a high L0 stop-writes threshold.
// fs is nil for the real file system (tests pass a crashable one).
func openDB(dir string, fs vfs.FS) (*pebble.DB, error) {
	opts := &pebble.Options{
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: memTableStopWrites,
		L0CompactionThreshold:       2,
		L0StopWritesThreshold:       1000,
		LBaseMaxBytes:               64 << 20,
		CacheSize:                   blockCacheSize,
		Logger:                      quietPebbleLogger{},
	}
	if fs != nil {
		opts.FS = fs
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble at %s: %w", dir, err)
	}
	return db, nil
}

// dbFS is the file system the store's DB is on.
func dbFS(fs vfs.FS) vfs.FS {
	if fs == nil {
		return vfs.Default
	}
	return fs
}

// quietPebbleLogger drops pebble's informational chatter; errors still
// reach the caller through returned errors.
type quietPebbleLogger struct{}

func (quietPebbleLogger) Infof(string, ...any)  {}
func (quietPebbleLogger) Errorf(string, ...any) {}
func (quietPebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
