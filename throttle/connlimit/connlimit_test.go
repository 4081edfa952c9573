package connlimit_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/missive-dev/missive/throttle/connlimit"
)

// A connection past the cap reads the busy answer, then EOF; closing a
// held connection, even twice, frees one slot.
func TestListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := connlimit.New(inner, 1, "busy\r\n")
	defer ln.Close()
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	held := func() net.Conn {
		dial()
		return <-accepted
	}
	refused := func() {
		t.Helper()
		c := dial()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := io.ReadAll(c); string(got) != "busy\r\n" || err != nil {
			t.Fatalf("past the cap: read %q, %v; want the busy answer, then EOF", got, err)
		}
	}

	c := held()
	refused()
	c.Close()
	c.Close()
	held().Close()
	held()
	refused()
}
