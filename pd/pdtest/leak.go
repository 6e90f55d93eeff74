package pdtest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// VerifyTestMain runs the tests of a package, then fails the run if
// goroutines are left behind, like goleak.VerifyTestMain, but gives stopped
// etcd members longer to finish: a follower forwards lease renewals to the
// etcd leader over a kept-alive peer HTTP connection, and after both have
// stopped, the two ends of that connection only go away when etcd's peer read
// timeout (5s) expires. Anything still there after leakGrace is a leak.
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := findLeaks(leakGrace); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left behind after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

const leakGrace = 10 * time.Second

func findLeaks(grace time.Duration) error {
	deadline := time.Now().Add(grace)
	for {
		err := goleak.Find() // retries for a second or two by itself
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
