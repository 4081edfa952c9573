package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strings"
)

// openAPIDoc is the OpenAPI 3.1 document of the /v1 API: every route of
// the table (routes), its scope, bodies, answers and errors. The tests
// hold it to the route table and send its examples to the real handlers,
// and the README's request examples are checked against it.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPIPattern serves the document. It is public: it describes the API,
// not anything the API holds, and clients and tools fetch it before they
// have a key.
const openAPIPattern = "GET /v1/openapi.json"

// openAPIETag is the document's strong validator: it changes with the
// binary's document only.
var openAPIETag = func() string {
	h := sha256.Sum256(openAPIDoc)
	return `"` + hex.EncodeToString(h[:16]) + `"`
}()

// serveOpenAPI answers GET /v1/openapi.json: the document, cacheable for
// an hour by anyone and revalidated by its ETag.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("ETag", openAPIETag)
	h.Set("X-Content-Type-Options", "nosniff")
	if etagMatch(r.Header.Get("If-None-Match"), openAPIETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
}

// etagMatch reports whether an If-None-Match header names etag (or is *).
func etagMatch(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == etag || v == "*" {
			return true
		}
	}
	return false
}
