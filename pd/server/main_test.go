package server_test

import (
	"testing"

	"github.com/rdb-project/rdb/pd/pdtest"
)

func TestMain(m *testing.M) {
	pdtest.VerifyTestMain(m)
}
