package dispatcher

import (
	"encoding/json"
	"net/http"
)

// WriteJSON writes v as the JSON answer with status; it is never cached
// and never sniffed.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteError writes err in the one error shape, {"error": {"code",
// "field", "message"}}, with its status from HTTPStatus: the one error
// writer of the API, the public pages' JSON answers and the webhooks. An
// error that is not an *Error is answered as internal, without its text.
func WriteError(w http.ResponseWriter, err error) {
	status, e := HTTPStatus(err)
	WriteJSON(w, status, map[string]*Error{"error": e})
}
