package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseInactiveAfter(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, // the dispatcher's default, 3 years
		{"off", -1, true},
		{"3y", 3 * 365 * day, true},
		{"1095d", 1095 * day, true},
		{"0", 0, false},
		{"0d", 0, false},
		{"-2y", 0, false},
		{"3 years", 0, false},
		{"72h", 0, false},
		{"y", 0, false},
	}
	for _, tt := range tests {
		got, err := parseInactiveAfter(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseInactiveAfter(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "MISSIVE_INACTIVE_AFTER") {
			t.Errorf("parseInactiveAfter(%q): error %q does not name the variable", tt.in, err)
		}
	}
}
