package dispatcher

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/missive-dev/missive/channels"
)

// SendID is the deterministic id of the send of run to contact on channel:
// the run id, "~", and a hash. Retries and double triggers compute the
// same id, so they find the same record.
func SendID(run, contact string, channel channels.Kind) string {
	h := sha256.Sum256([]byte(run + "\x00" + contact + "\x00" + string(channel)))
	return run + "~" + hex.EncodeToString(h[:12])
}

// SplitSendID returns the run and the hash of a send id, and false when
// id does not have a send id's shape.
func SplitSendID(id string) (run, hash string, ok bool) {
	i := strings.LastIndexByte(id, '~')
	if i <= 0 || i == len(id)-1 {
		return "", id, false
	}
	return id[:i], id[i+1:], true
}
