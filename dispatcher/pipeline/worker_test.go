package pipeline

import (
	"testing"
	"time"
)

// A shutdown waits for the chunks being handed over, and only for them.
func TestHandoversWait(t *testing.T) {
	t.Parallel()
	var h handovers
	h.wait() // nothing in flight: returns at once
	h.start()
	h.start()
	waited := make(chan struct{})
	go func() {
		h.wait()
		close(waited)
	}()
	h.end()
	select {
	case <-waited:
		t.Fatal("wait returned with a chunk still in flight")
	default:
	}
	h.end()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return once nothing was in flight")
	}
	h.start()
	h.end()
	h.wait()
}
