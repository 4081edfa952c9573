package console

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher/store"
)

func TestTimelineSVG(t *testing.T) {
	if got := timelineSVG(nil, time.UTC); got != "" {
		t.Errorf("no minutes: %q, want nothing", got)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	svg := string(timelineSVG([]store.RunMinute{
		{At: at, Outcomes: map[string]int64{"sent": 10, "failed": 1}},
		{At: at.Add(3 * time.Minute), Outcomes: map[string]int64{"sent": 40, "no_consent": 2}},
	}, time.FixedZone("CET", 3600)))
	// One point a minute, the quiet ones at zero: 4 minutes.
	path := regexp.MustCompile(`data-series="sent"[^>]* d="([^"]*)"`).FindStringSubmatch(svg)
	if path == nil || strings.Count(path[1], "L") != 4+1 {
		t.Fatalf("sent area: %v in\n%s", path, svg)
	}
	// The tallest minute reaches the top, the axis labels are local times.
	for _, want := range []string{">40</text>", ">10:00</text>", ">10:03</text>", `data-series="other"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q:\n%s", want, svg)
		}
	}
	top := float64(padT)
	if !strings.Contains(path[1], " L"+strconv.FormatFloat(float64(chartW-padR), 'f', 1, 64)+" "+strconv.FormatFloat(top, 'f', 1, 64)) {
		t.Errorf("the last minute (40 sent) does not reach the top: %s", path[1])
	}
}

func TestGatesSVG(t *testing.T) {
	if got := gatesSVG([]count{{Name: "queued"}}); got != "" {
		t.Errorf("nothing decided: %q, want nothing", got)
	}
	svg := string(gatesSVG([]count{{Name: "capped", N: 1, Color: "#111"}, {Name: "queued", N: 3, Color: "#222"}, {Name: "deferred", N: 0}}))
	widths := regexp.MustCompile(`<rect[^>]* width="([0-9.]+)"`).FindAllStringSubmatch(svg, -1)
	if len(widths) != 2 {
		t.Fatalf("%d bars, want 2 (none for a zero):\n%s", len(widths), svg)
	}
	a, _ := strconv.ParseFloat(widths[0][1], 64)
	b, _ := strconv.ParseFloat(widths[1][1], 64)
	if a != chartW/4 || b != 3*chartW/4 {
		t.Errorf("bar widths %v and %v, want a quarter and three quarters of %d", a, b, chartW)
	}
	if svg := string(gatesSVG([]count{{Name: "<x>", N: 1}})); strings.Contains(svg, "<x>") || !strings.Contains(svg, "&lt;x&gt;") {
		t.Errorf("a reason's name is not escaped: %s", svg)
	}
}
