package store_test

import (
	"testing"

	"github.com/rdb-project/rdb/pd/pdtest"
)

// TestMain fails the run if a test leaves goroutines behind (stores, PD
// members or connections not stopped); PD members get etcd's grace.
func TestMain(m *testing.M) { pdtest.VerifyTestMain(m) }
