package cpu

import (
	"testing"

	"github.com/tgate-web/tgate/backend/backendtest"
)

// TestConformance runs the backend conformance suite on the CPU backend.
func TestConformance(t *testing.T) {
	backendtest.RunAll(t, New())
}
