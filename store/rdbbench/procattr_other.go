//go:build !linux

package rdbbench

import "syscall"

// childAttr: elsewhere than on Linux, children keep the defaults; a
// killed rdb-bench may leave them running.
func childAttr() *syscall.SysProcAttr { return nil }
