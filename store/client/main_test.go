package client_test

import (
	"testing"

	"github.com/rdb-project/rdb/pd/pdtest"
)

// TestMain fails the run if a test leaves goroutines behind (stores or
// connections not closed).
func TestMain(m *testing.M) { pdtest.VerifyTestMain(m) }
