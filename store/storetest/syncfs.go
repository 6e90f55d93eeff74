package storetest

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SyncCountingFS is the real file system with a count of the syncs made
// through it, so benchmarks can show how many operations share one fsync.
type SyncCountingFS struct {
	vfs.FS
	Syncs *atomic.Int64
}

// NewSyncCountingFS wraps the default file system.
func NewSyncCountingFS() SyncCountingFS {
	return SyncCountingFS{FS: vfs.Default, Syncs: new(atomic.Int64)}
}

func (fs SyncCountingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return syncCountingFile{File: f, syncs: fs.Syncs}, nil
}

func (fs SyncCountingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, c))
}

func (fs SyncCountingFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs SyncCountingFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname, c))
}

type syncCountingFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f syncCountingFile) Sync() error {
	f.syncs.Add(1)
	return f.File.Sync()
}

func (f syncCountingFile) SyncData() error {
	f.syncs.Add(1)
	return f.File.SyncData()
}

func (f syncCountingFile) SyncTo(length int64) (bool, error) {
	f.syncs.Add(1)
	return f.File.SyncTo(length)
}
