package main

import (
	"bytes"
	"context"
	"io"
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

func TestInactiveAfterErrorNamesTheVariable(t *testing.T) {
	env := map[string]string{
		"MISSIVE_SECRET":         strings.Repeat("s", 32),
		"MISSIVE_API_KEYS":       "a:" + strings.Repeat("k", 20),
		"MISSIVE_DATA_KEYS":      "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MISSIVE_REDIS_URL":      "redis://127.0.0.1:1",
		"MISSIVE_INACTIVE_AFTER": "three years",
	}
	var stderr bytes.Buffer
	code := Main(context.Background(), []string{"worker"}, func(k string) string { return env[k] }, io.Discard, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "MISSIVE_INACTIVE_AFTER") {
		t.Errorf("exit %d, stderr %q: want an error naming MISSIVE_INACTIVE_AFTER", code, stderr.String())
	}
}
