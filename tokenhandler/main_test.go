package tokenhandler_test

import (
	"os"
	"testing"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

// The tests listen on fixed ports: one run of this package at a time per
// machine (testcaddy.Exclusive).
func TestMain(m *testing.M) { os.Exit(testcaddy.Exclusive(m, "tokenhandler")) }
