// Package connlimit caps the connections a server keeps open. A
// connection past the cap is answered at once and closed, so that the
// peer sees the overload and retries, instead of waiting unseen in the
// accept queue as with golang.org/x/net/netutil.LimitListener.
//
//	ln = connlimit.New(ln, 16, "421 4.3.2 Too many sessions, try again later\r\n")
package connlimit

import (
	"io"
	"net"
	"sync"
	"time"
)

// Listener is a net.Listener that keeps at most a fixed number of the
// connections it accepted open.
type Listener struct {
	net.Listener
	busy  string
	slots chan struct{}
}

// New returns a listener on ln that keeps at most n connections open;
// it writes busy, the whole answer of the server's protocol to an
// overload, to a connection past them and closes it.
func New(ln net.Listener, n int, busy string) *Listener {
	return &Listener{Listener: ln, busy: busy, slots: make(chan struct{}, n)}
}

// Accept waits for a connection within the cap; it answers and closes
// those past it meanwhile. It returns the error of the listener's Accept.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &conn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			// The answer fits any socket buffer; the deadline covers a
			// peer that does not read at all.
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, l.busy)
			_ = c.Close()
		}
	}
}

// conn gives its slot back when closed, once.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
