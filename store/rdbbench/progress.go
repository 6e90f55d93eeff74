package rdbbench

// Progress while a run goes on: on a terminal, a bar redrawn in place a
// few times a second; elsewhere (a pipe, a file, CI logs) one line every
// few seconds.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressState is a snapshot of a run.
type progressState struct {
	fraction    float64 // done, 0 to 1
	elapsed     time.Duration
	ops, errors int64
	unit        string // what ops counts: "ops" or "keys"
}

const barWidth = 30

// startProgress shows read's snapshots on p.progress until the returned
// function is called, which stops the display and clears the bar.
func startProgress(p params, label string, read func() progressState) (stop func()) {
	if p.progress == nil {
		return func() {}
	}
	every := p.progressEvery
	if p.tty {
		every = 200 * time.Millisecond
	}
	if every <= 0 {
		every = 5 * time.Second
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if p.tty {
					fmt.Fprint(p.progress, "\r\033[K")
				}
				return
			case <-tick.C:
				st := read()
				if p.tty {
					fmt.Fprint(p.progress, "\r\033[K"+barLine(label, st))
				} else {
					fmt.Fprintln(p.progress, progressLine(label, st))
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// barLine is the terminal display: a bar, then the counts.
func barLine(label string, st progressState) string {
	f := min(max(st.fraction, 0), 1)
	filled := int(f * barWidth)
	return fmt.Sprintf("%-11s [%s%s] %3.0f%%  %s", label, strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), f*100, counts(st))
}

// progressLine is the display for logs.
func progressLine(label string, st progressState) string {
	return fmt.Sprintf("rdb-bench: %s %.0f%%: %s", label, min(max(st.fraction, 0), 1)*100, counts(st))
}

func counts(st progressState) string {
	rate := 0.0
	if s := st.elapsed.Seconds(); s > 0 {
		rate = float64(st.ops) / s
	}
	return fmt.Sprintf("%s  %s %s  %s %s/s  %s errors", st.elapsed.Truncate(100*time.Millisecond), group(st.ops), st.unit, group(int64(rate)), st.unit, group(st.errors))
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// group writes n with thousands separators: 1,234,567.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
