package email

import (
	"bufio"
	"bytes"
	"net/textproto"
	"testing"
)

// dotWriter writes what textproto's DotWriter writes, however the data is
// cut into writes.
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"", "a", ".", "\n", "\r", "\r\n", ".\r\n.\r\n", "a\nb\r\n.c\n..d\r", "line\r\r\n.\n", "x\r\n\r\n.", "\n.\n.", "\r\n.\r\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		var want bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want))
		dw := tw.DotWriter()
		_, _ = dw.Write(data)
		_ = dw.Close()

		var got bytes.Buffer
		d := &dotWriter{w: bufio.NewWriter(&got)}
		step := max(int(cut), 1)
		for rest := data; len(rest) > 0; {
			n := min(step, len(rest))
			if _, err := d.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("dotWriter wrote %q, textproto %q", got.Bytes(), want.Bytes())
		}
	})
}
