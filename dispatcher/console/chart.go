package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
)

// The charts are small SVG drawn here rather than by a library: two
// shapes (an area with a line, a stacked bar) need a few dozen lines, and
// Go's charting libraries draw PNGs or pull in a JavaScript runtime.
// Their text is numbers and times only; the legends, which are words, are
// the page's, in its language.

// Chart geometry.
const (
	chartW, chartH = 640, 180
	padL, padR     = 40, 12
	padT, padB     = 10, 24
)

// Colours of the charts and of their legends.
const (
	colorSent  = "#2f7d32"
	colorOther = "#c62828"
)

// palette colours the gate decisions, in the order listed.
var palette = []string{"#2f7d32", "#f9a825", "#1565c0", "#6a1b9a", "#c62828", "#00838f", "#ef6c00", "#5d4037", "#546e7a", "#ad1457"}

// decisionColor is the colour of a gate decision: queued green,
// deferred amber, the others in turn.
func decisionColor(i int, name string) string {
	switch name {
	case dispatcher.StateQueued:
		return palette[0]
	case dispatcher.StateDeferred:
		return palette[1]
	}
	return palette[2+i%(len(palette)-2)]
}

// timelineSVG draws the sends settled minute by minute: sent as a green
// area, every other outcome (failed, cancelled, stopped at the re-check)
// as a red line, times in loc. Empty when nothing settled yet.
func timelineSVG(minutes []store.RunMinute, loc *time.Location) template.HTML {
	if len(minutes) == 0 {
		return ""
	}
	first, last := minutes[0].At, minutes[len(minutes)-1].At
	if !last.After(first) {
		first, last = first.Add(-time.Minute), last.Add(time.Minute)
	}
	n := int(last.Sub(first)/time.Minute) + 1
	if n > 24*60 { // a long run: the last day
		first = last.Add(-24 * 60 * time.Minute)
		n = 24*60 + 1
	}
	sent, other := make([]int64, n), make([]int64, n)
	var top int64 = 1
	for _, m := range minutes {
		i := int(m.At.Sub(first) / time.Minute)
		if i < 0 || i >= n {
			continue
		}
		for k, v := range m.Outcomes {
			if k == dispatcher.StateSent {
				sent[i] += v
			} else {
				other[i] += v
			}
		}
		top = max(top, sent[i], other[i])
	}
	x := func(i int) float64 { return padL + float64(i)*float64(chartW-padL-padR)/float64(max(n-1, 1)) }
	y := func(v int64) float64 { return padT + float64(chartH-padT-padB)*(1-float64(v)/float64(top)) }
	var b strings.Builder
	chartFrame(&b, top, first.In(loc).Format("15:04"), last.In(loc).Format("15:04"))
	// Sent: an area closed on the axis.
	fmt.Fprintf(&b, `<path data-series="sent" fill="%s" fill-opacity="0.35" stroke="%s" stroke-width="2" d="M%.1f %.1f`, colorSent, colorSent, x(0), y(0))
	for i, v := range sent {
		fmt.Fprintf(&b, " L%.1f %.1f", x(i), y(v))
	}
	fmt.Fprintf(&b, ` L%.1f %.1f Z"/>`, x(n-1), y(0))
	// The other outcomes: a line.
	fmt.Fprintf(&b, `<polyline data-series="other" fill="none" stroke="%s" stroke-width="2" points="`, colorOther)
	for i, v := range other {
		fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(v))
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String())
}

// chartFrame opens a chart's svg in b and draws its axes, the value axis
// from 0 to top and the time axis labelled from and to.
func chartFrame(b *strings.Builder, top int64, from, to string) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, padL, chartH-padB, chartW-padR, chartH-padB)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, padL, padT, padL, chartH-padB)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#555">%d</text>`, padL-4, padT+8, top)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#555">0</text>`, padL-4, chartH-padB)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" fill="#555">%s</text>`, padL, chartH-6, from)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#555">%s</text>`, chartW-padR, chartH-6, to)
}

// gatesSVG draws the gate's decisions as one stacked bar, in the order
// and colours of reasons. Empty when nothing was decided yet.
func gatesSVG(reasons []count) template.HTML {
	var total int64
	for _, r := range reasons {
		total += r.N
	}
	if total == 0 {
		return ""
	}
	const w, h = chartW, 28
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" xmlns="http://www.w3.org/2000/svg">`, w, h, w, h)
	var at float64
	for _, r := range reasons {
		if r.N == 0 {
			continue
		}
		width := float64(w) * float64(r.N) / float64(total)
		fmt.Fprintf(&b, `<rect data-reason="%s" x="%.1f" y="0" width="%.1f" height="%d" fill="%s"><title>%s: %d</title></rect>`,
			template.HTMLEscapeString(r.Name), at, width, h, r.Color, template.HTMLEscapeString(r.Name), r.N)
		at += width
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// seriesLine is one line of an analytics chart: its name (the legend's
// catalogue key, analytics.<name>), its colour, and its value in a
// bucket.
type seriesLine struct {
	Name  string
	Color string
	Of    func(store.Counts) int64
}

// seriesSVG draws the analytics buckets as one line per series, a point
// per step from the first bucket to the last (buckets without events
// count zero), the axis labelled in loc with layout. Empty when there is
// no bucket.
func seriesSVG(buckets []store.Bucket, step time.Duration, lines []seriesLine, loc *time.Location, layout string) template.HTML {
	if len(buckets) == 0 {
		return ""
	}
	first, last := buckets[0].Start, buckets[len(buckets)-1].Start
	n := int(last.Sub(first)/step) + 1
	if n > 24*31 {
		n = 24 * 31
		first = last.Add(-time.Duration(n-1) * step)
	}
	values := make([][]int64, len(lines))
	for i := range values {
		values[i] = make([]int64, n)
	}
	var top int64 = 1
	for _, b := range buckets {
		j := int(b.Start.Sub(first) / step)
		if j < 0 || j >= n {
			continue
		}
		for i, l := range lines {
			values[i][j] += l.Of(b.Counts)
			top = max(top, values[i][j])
		}
	}
	x := func(j int) float64 {
		if n == 1 {
			return float64(padL+chartW-padR) / 2
		}
		return padL + float64(j)*float64(chartW-padL-padR)/float64(n-1)
	}
	y := func(v int64) float64 { return padT + float64(chartH-padT-padB)*(1-float64(v)/float64(top)) }
	var b strings.Builder
	chartFrame(&b, top, first.In(loc).Format(layout), last.In(loc).Format(layout))
	for i, l := range lines {
		fmt.Fprintf(&b, `<polyline data-series="%s" fill="none" stroke="%s" stroke-width="2" points="`, template.HTMLEscapeString(l.Name), l.Color)
		for j, v := range values[i] {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(j), y(v))
		}
		b.WriteString(`"/>`)
		if n == 1 {
			fmt.Fprintf(&b, `<circle data-series="%s" cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, template.HTMLEscapeString(l.Name), x(0), y(values[i][0]), l.Color)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
