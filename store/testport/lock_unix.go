//go:build unix

package testport

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// held keeps the lock files open, and so locked, until the process exits.
var held []*os.File

// lock takes an exclusive lock on a file named for port, held until this
// process exits; false if another process holds it. Where no lock file
// can be made, the bind check alone decides.
func lock(port int) bool {
	dir := filepath.Join(os.TempDir(), "rdb-testport")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return false
	}
	held = append(held, f)
	return true
}
