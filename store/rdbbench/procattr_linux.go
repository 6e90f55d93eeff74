package rdbbench

import "syscall"

// childAttr puts a child in its own process group (a Ctrl-C in the
// terminal reaches rdb-bench alone, which stops the children in order) and
// has the kernel kill it if rdb-bench dies first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
