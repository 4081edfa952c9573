package templates

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSegments(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	euro := func(n int) string { return strings.Repeat("€", n) }
	const emoji = "😀" // outside the BMP: a surrogate pair, two UTF-16 units
	tests := []struct {
		name string
		body string
		want SegmentInfo
	}{
		{"empty", "", SegmentInfo{}},
		{"one char", "a", SegmentInfo{"GSM-7", 1, 1}},
		{"160 GSM", a(160), SegmentInfo{"GSM-7", 160, 1}},
		{"161 GSM", a(161), SegmentInfo{"GSM-7", 161, 2}},
		{"153*2 GSM", a(153 * 2), SegmentInfo{"GSM-7", 306, 2}},
		{"153*2+1 GSM", a(153*2 + 1), SegmentInfo{"GSM-7", 307, 3}},
		{"extension counts two", "€", SegmentInfo{"GSM-7", 2, 1}},
		{"all extension chars", "\f^{}\\[~]|€", SegmentInfo{"GSM-7", 20, 1}},
		{"80 euros fill one part", euro(80), SegmentInfo{"GSM-7", 160, 1}},
		{"159 + euro overflow", a(159) + "€", SegmentInfo{"GSM-7", 161, 2}},
		{"81 euros", euro(81), SegmentInfo{"GSM-7", 162, 2}},
		{"escape never split", a(152) + "€" + a(152), SegmentInfo{"GSM-7", 306, 3}},
		{"french accents stay GSM", "Été à Lyon: é è ù ì ò à É Ç", SegmentInfo{"GSM-7", 27, 1}},
		{"greek and symbols", "ΔΦΓΛΩΠΨΣΘΞ @£$¥¤§¡¿ÆæßØøÅåÄÖÑÜäöñü", SegmentInfo{"GSM-7", 34, 1}},
		{"CR LF are basic", "a\r\nb", SegmentInfo{"GSM-7", 4, 1}},
		{"circumflex is not GSM", "fête", SegmentInfo{"UCS-2", 4, 1}},
		{"small c cedilla is not GSM", "ç", SegmentInfo{"UCS-2", 1, 1}},
		{"backtick is not GSM", "`", SegmentInfo{"UCS-2", 1, 1}},
		{"escape char itself is not GSM", "\x1b", SegmentInfo{"UCS-2", 1, 1}},
		{"emoji alone", emoji, SegmentInfo{"UCS-2", 2, 1}},
		{"emoji 70", a(68) + emoji, SegmentInfo{"UCS-2", 70, 1}},
		{"emoji 71", a(69) + emoji, SegmentInfo{"UCS-2", 71, 2}},
		{"emoji 67*2", a(132) + emoji, SegmentInfo{"UCS-2", 134, 2}},
		{"emoji 67*2+1", a(133) + emoji, SegmentInfo{"UCS-2", 135, 3}},
		{"extension in UCS-2 counts one", "€" + emoji, SegmentInfo{"UCS-2", 3, 1}},
		{"surrogate pair never split", a(66) + emoji + a(66), SegmentInfo{"UCS-2", 134, 3}},
		{"BMP non-GSM", strings.Repeat("日", 70), SegmentInfo{"UCS-2", 70, 1}},
		{"invalid UTF-8", "a\xffb", SegmentInfo{"UCS-2", 3, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Segments(tt.body)); diff != "" {
				t.Errorf("Segments (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGSMTables(t *testing.T) {
	basic := 0
	for r, n := range gsmSeptets {
		if n == 1 {
			basic++
		}
		if r == 0x1b {
			t.Error("ESC is in the character set")
		}
	}
	// 128 codes minus the escape.
	if basic != 127 {
		t.Errorf("basic characters = %d, want 127", basic)
	}
	if ext := len(gsmSeptets) - basic; ext != 10 {
		t.Errorf("extension characters = %d, want 10", ext)
	}
	// Spot checks against 3GPP TS 23.038 code positions.
	runes := []rune(gsmBasic)
	for code, want := range map[int]rune{0x00: '@', 0x02: '$', 0x09: 'Ç', 0x10: 'Δ', 0x11: '_', 0x1f: 'É', 0x24: '¤', 0x40: '¡', 0x5b: 'Ä', 0x5f: '§', 0x60: '¿', 0x7f: 'à'} {
		if runes[code] != want {
			t.Errorf("code 0x%02X = %q, want %q", code, runes[code], want)
		}
	}
}
