package api

import (
	"net/http"

	"github.com/missive-dev/missive/dispatcher"
)

// The record of processing; the work is package privacy's, as is that of
// the erasure and export routes (contactRoute).

// getRegister answers GET /v1/register[?format=markdown].
func (a *handler) getRegister(w http.ResponseWriter, r *http.Request) (int, any, error) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "markdown" {
		return 0, nil, dispatcher.Invalid("format", "must be json or markdown")
	}
	reg, err := a.d.Privacy.Register(r.Context())
	if err != nil {
		return 0, nil, err
	}
	if format == "markdown" {
		return http.StatusOK, rawBody{contentType: "text/markdown; charset=utf-8", body: []byte(reg.Markdown())}, nil
	}
	return http.StatusOK, reg, nil
}
