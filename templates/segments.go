package templates

import "unicode/utf16"

// gsmBasic is the GSM 03.38 default alphabet (3GPP TS 23.038, 6.2.1) in
// code order, 0x00 to 0x7F. Position 0x1B is the escape to the extension
// table, not a character: it is written here as U+001B and removed from the
// set below.
const gsmBasic = "" +
	"@£$¥èéùìòÇ\nØø\rÅå" + // 0x00-0x0F
	"Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ" + // 0x10-0x1F
	" !\"#¤%&'()*+,-./" + // 0x20-0x2F
	"0123456789:;<=>?" + // 0x30-0x3F
	"¡ABCDEFGHIJKLMNO" + // 0x40-0x4F
	"PQRSTUVWXYZÄÖÑÜ§" + // 0x50-0x5F
	"¿abcdefghijklmno" + // 0x60-0x6F
	"pqrstuvwxyzäöñüà" // 0x70-0x7F

// gsmExtension is the GSM 03.38 extension table: each character is sent as
// ESC followed by its code, two septets. Form feed (0x0A), ^ (0x14),
// { (0x28), } (0x29), \ (0x2F), [ (0x3C), ~ (0x3D), ] (0x3E), | (0x40),
// € (0x65).
const gsmExtension = "\f^{}\\[~]|€"

// gsmSeptets maps each GSM-7 character to the septets it takes.
var gsmSeptets = func() map[rune]int {
	m := make(map[rune]int, 138)
	n := 0
	for _, r := range gsmBasic {
		if r != 0x1b {
			m[r] = 1
		}
		n++
	}
	if n != 128 {
		panic("templates: the GSM 03.38 basic table must have 128 codes")
	}
	for _, r := range gsmExtension {
		m[r] = 2
	}
	return m
}()

// SMS segment sizes: a single message, and each part of a concatenated one
// (the user data header takes 6 bytes: 7 septets or 3 UTF-16 units).
const (
	gsmSingle  = 160
	gsmPart    = 153
	ucs2Single = 70
	ucs2Part   = 67
)

// Segments tells how body travels as SMS. A body made only of GSM 03.38
// characters is GSM-7, where extension characters (€ ^ { } [ ] ~ \ | and
// form feed) take two septets; any other character switches the whole
// message to UCS-2, counted in UTF-16 code units (an emoji outside the
// BMP takes two). One part holds 160 septets or 70 units; a concatenated
// message holds 153 or 67 per part. Like the handsets and providers that
// split messages, Segments never cuts an escape sequence or a surrogate
// pair across two parts, so a part may hold one unit less. An empty body
// has no parts. Invalid UTF-8 counts as U+FFFD.
func Segments(body string) SegmentInfo {
	if body == "" {
		return SegmentInfo{}
	}
	gsm := true
	units := 0
	for _, r := range body {
		n, ok := gsmSeptets[r]
		if !ok {
			gsm = false
			break
		}
		units += n
	}
	info := SegmentInfo{Encoding: "GSM-7"}
	single, part := gsmSingle, gsmPart
	cost := func(r rune) int { return gsmSeptets[r] }
	if !gsm {
		info.Encoding = "UCS-2"
		single, part = ucs2Single, ucs2Part
		cost = func(r rune) int {
			if n := utf16.RuneLen(r); n > 0 {
				return n
			}
			return 1 // invalid runes are sent as U+FFFD
		}
		units = 0
		for _, r := range body {
			units += cost(r)
		}
	}
	info.Units = units
	if units <= single {
		info.Parts = 1
		return info
	}
	parts, used := 1, 0
	for _, r := range body {
		n := cost(r)
		if used+n > part {
			parts++
			used = 0
		}
		used += n
	}
	info.Parts = parts
	return info
}
