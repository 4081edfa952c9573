package dispatcher

import (
	"bytes"
	"encoding/json"
	"regexp"
)

// Limits of a send's data (POST /v1/sends "data"): what an upstream system
// passes for one message (an order number, a cart's lines), not a store.
const (
	// MaxSendDataSize bounds the data's JSON, as received.
	MaxSendDataSize = 16 << 10
	// MaxSendDataDepth bounds the nesting of objects and arrays; the data
	// object itself is depth 1.
	MaxSendDataDepth = 8
)

// SendDataKey is what a key of a send's data looks like: a name a template
// reaches as a field ({{.Data.order.number}}).
var SendDataKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ParseSendData validates a send's data: a JSON object of at most
// MaxSendDataSize bytes and MaxSendDataDepth levels whose keys, at every
// level, match SendDataKey. Numbers keep their text (json.Number). It
// returns nil for absent or null data, and an error with code invalid
// naming the field data otherwise; the message never quotes a value or a
// key.
func ParseSendData(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) > MaxSendDataSize {
		return nil, Invalid("data", "at most %d bytes of JSON", MaxSendDataSize)
	}
	if raw[0] != '{' {
		return nil, Invalid("data", "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, Invalid("data", "must be a JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, Invalid("data", "must be a JSON object")
	}
	if err := checkSendData(m, 1); err != nil {
		return nil, err
	}
	return m, nil
}

func checkSendData(v any, depth int) error {
	switch v.(type) {
	case map[string]any, []any:
		if depth > MaxSendDataDepth {
			return Invalid("data", "at most %d levels of nested objects and arrays", MaxSendDataDepth)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if !SendDataKey.MatchString(k) {
				return Invalid("data", "keys must be letters, digits and _, not starting with a digit (64 at most), at every level")
			}
			if err := checkSendData(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkSendData(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
