package procstat_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/missive-dev/missive/dispatcher/metrics/procstat"
)

// The figures move the way the process does: CPU grows with work, the
// peak of memory covers a large allocation that was touched, and the
// load reads as three numbers.
func TestFigures(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	cpu0 := procstat.CPU()
	const size = 64 << 20
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	x := 0
	for i := range 50_000_000 {
		x ^= i * int(buf[i%size])
	}
	if procstat.CPU() <= cpu0 {
		t.Errorf("CPU did not grow: %v then %v (%d)", cpu0, procstat.CPU(), x)
	}
	if rss := procstat.PeakRSS(); rss < size {
		t.Errorf("peak RSS %d bytes, under the %d just touched", rss, size)
	}
	if l := procstat.LoadAverage(); !regexp.MustCompile(`^\d+\.\d+ \d+\.\d+ \d+\.\d+$`).MatchString(l) {
		t.Errorf("load average %q", l)
	}
}
