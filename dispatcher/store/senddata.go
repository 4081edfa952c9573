package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// sendDataField is the field of a send record that holds its per-send
// template data, sealed (SealSendData): it lives and expires with the
// record, and goes with it on erasure.
const sendDataField = "data"

// SendDataAAD binds a send's sealed data to the send: a ciphertext copied
// to another send's record does not open.
func SendDataAAD(send string) []byte { return []byte("senddata:" + send) }

// SealSendData encodes a send's data for Redis: its JSON, sealed under the
// active data key and bound to the send id.
func (s *Store) SealSendData(send string, data map[string]any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode send data: %w", err)
	}
	return s.Keys.Seal(b, SendDataAAD(send)), nil
}

// OpenSendData decodes what SealSendData sealed for send; numbers come back
// as json.Number, with their text. Returns an error wrapping
// ErrUnknownDataKey or ErrSealed when it does not open (the error names the
// send, never the data).
func (s *Store) OpenSendData(send string, sealed []byte) (map[string]any, error) {
	js, _, err := s.Keys.Open(sealed, SendDataAAD(send))
	if err != nil {
		return nil, fmt.Errorf("open send data %s: %w", send, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode send data %s: %w", send, err)
	}
	return m, nil
}

// setSendDataScript writes a send's data once, into a record that exists:
// a record gone (expired, erased) is not brought back with data alone.
// KEYS: send. ARGV: field, sealed data. Returns 1 if written.
var setSendDataScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
`)

// SetSendData stores data with the send's record, sealed, unless the record
// already holds data or does not exist; it reports whether it wrote. The
// data expires with the record.
func (s *Store) SetSendData(ctx context.Context, send string, data map[string]any) (bool, error) {
	sealed, err := s.SealSendData(send, data)
	if err != nil {
		return false, err
	}
	n, err := setSendDataScript.Run(ctx, s.Redis, []string{s.SendKey(send)}, sendDataField, sealed).Int()
	if err != nil {
		return false, fmt.Errorf("set send data: %w", err)
	}
	return n == 1, nil
}

// SendDataDigest is a keyed MAC of a send's data as canonical JSON: what
// an idempotency record keeps to tell the same data from other data, which
// without the secret no one can check a guess of the data against.
func (s *Store) SendDataDigest(data map[string]any) (string, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("encode send data: %w", err)
	}
	m := hmac.New(sha256.New, DeriveKey(s.secret, "senddata/digest"))
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}
