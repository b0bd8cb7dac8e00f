package apiserve

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

// OpenAPI is the API's description, OpenAPI 3.1: every route, its
// parameters, responses and schemas, and the two ways to present a token.
// The tests hold the handlers to it.
//
//go:embed openapi.json
var OpenAPI []byte

var openAPITag = func() string {
	sum := sha256.Sum256(OpenAPI)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// openAPI answers GET /v1/openapi.json, to anyone: it holds no data.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("ETag", openAPITag)
	http.ServeContent(w, r, "openapi.json", time.Time{}, bytes.NewReader(OpenAPI))
}
