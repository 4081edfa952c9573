package esp

import (
	"encoding/base64"
	"strings"
)

// MessageIDLocal returns the left part of the Message-ID of the message of
// send id: id itself when it is a valid dot-atom (RFC 5322 id-left), else
// "m-" and id in unpadded base64url, so that the same send id always
// yields the same Message-ID. SendIDFromMessageID reverses it.
//
// The encoding is fixed: the Message-IDs of mails already sent must still
// decode when their bounces come back.
func MessageIDLocal(id string) string {
	if isDotAtom(id) {
		return id
	}
	return "m-" + base64.RawURLEncoding.EncodeToString([]byte(id))
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// SendIDFromMessageID returns the send id a Message-ID names when Missive
// wrote it ("<local@domain>", angle brackets and spaces around optional,
// local as MessageIDLocal writes it) and true; else "" and false. The id
// must look like a send id, "run~hash": a non-empty part before and after
// its last '~', no control characters. A Message-ID longer than 512 bytes
// is not ours.
func SendIDFromMessageID(mid string) (string, bool) {
	mid = strings.TrimSpace(mid)
	if mid == "" || len(mid) > maxID {
		return "", false
	}
	mid = strings.TrimSuffix(strings.TrimPrefix(mid, "<"), ">")
	local, _, ok := strings.Cut(mid, "@")
	if !ok || local == "" {
		return "", false
	}
	if enc, ok := strings.CutPrefix(local, "m-"); ok {
		if b, err := base64.RawURLEncoding.DecodeString(enc); err == nil && sendIDShape(string(b)) {
			return string(b), true
		}
	}
	if sendIDShape(local) {
		return local, true
	}
	return "", false
}

// sendIDShape reports whether id looks like a send id: "run~hash", both
// parts non-empty, no control characters.
func sendIDShape(id string) bool {
	i := strings.LastIndexByte(id, '~')
	return i > 0 && i < len(id)-1 && !strings.ContainsFunc(id, isControl)
}

// sendOf is the send id of mid, or "".
func sendOf(mid string) string {
	id, _ := SendIDFromMessageID(mid)
	return id
}
