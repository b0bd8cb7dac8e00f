package status

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tip-project/tip/config"
)

// TestReadAPI: the status asks the API for its OpenAPI document, which needs
// no token, and says why when it cannot.
func TestReadAPI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/openapi.json" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"openapi": "3.1.0", "info": {"title": "TIP", "version": "1.2.0"}}`)) //nolint:errcheck
	}))
	addr := strings.TrimPrefix(srv.URL, "http://")
	if a := readAPI(context.Background(), config.API{Listen: addr}); a.Error != "" || a.Version != "1.2.0" {
		t.Errorf("answering: %+v", a)
	}
	srv.Close()
	if a := readAPI(context.Background(), config.API{Listen: addr}); a.Error == "" {
		t.Errorf("stopped: %+v, want an error", a)
	}
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	if a := readAPI(context.Background(), config.API{Listen: strings.TrimPrefix(other.URL, "http://")}); !strings.Contains(a.Error, "404") {
		t.Errorf("something else on the port: %+v, want its 404", a)
	}
}
