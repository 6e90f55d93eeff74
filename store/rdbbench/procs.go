package rdbbench

// The processes of compare's clusters: started with their output in a log
// file, watched for an early exit, and stopped — SIGTERM, then SIGKILL
// after a grace period — however compare ends.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process may take to stop after SIGTERM.
const stopGrace = 10 * time.Second

// cluster is a set of running processes.
type cluster struct {
	grace    time.Duration // after SIGTERM (0: stopGrace)
	mu       sync.Mutex
	procs    []*proc
	stopping bool
}

type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done
}

// start starts bin with args, its output going to logPath.
func (c *cluster) start(name, logPath, bin string, args ...string) error {
	out, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return nil
}

// exited returns an error naming the first process that has exited before
// stop, with the end of its log.
func (c *cluster) exited() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil
	}
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v); the end of %s:\n%s", p.name, p.err, p.log, tail(p.log, 20))
		default:
		}
	}
	return nil
}

// stop stops every process and waits until they have exited.
func (c *cluster) stop() {
	c.mu.Lock()
	c.stopping = true
	procs := c.procs
	c.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	grace := c.grace
	if grace == 0 {
		grace = stopGrace
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline.C:
			for _, q := range procs {
				_ = q.cmd.Process.Kill()
			}
			<-p.done
		}
	}
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var errNoPort = errors.New("no free loopback port")
