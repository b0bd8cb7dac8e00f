package lab

import (
	"archive/zip"
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/tip-project/tip/lab/world"
)

// AllowlistHandler serves the world's benign references under /allowlists/: its
// top-sites ranking in Tranco's format — "rank,domain" lines ending in CRLF, no
// header — plain (tranco/top-1m.csv) and zipped as tranco-list.eu offers it
// (tranco/top-1m.csv.zip), and its CDN providers' edge prefixes one a line
// (cdn-ranges.txt). Both never change for a seed, so fixed validators let clients
// ask conditionally.
func AllowlistHandler(w *world.World, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	top := func(zipped bool) http.HandlerFunc {
		return func(rw http.ResponseWriter, r *http.Request) {
			if notModified(rw, r, fmt.Sprintf(`"tranco-%d-%t"`, w.Seed, zipped)) {
				return
			}
			var out io.Writer = rw
			if zipped {
				rw.Header().Set("Content-Type", "application/zip")
				zw := zip.NewWriter(rw)
				defer zw.Close()
				f, err := zw.Create("top-1m.csv")
				if err != nil {
					return
				}
				out = f
			} else {
				rw.Header().Set("Content-Type", "text/csv")
			}
			bw := bufio.NewWriter(out)
			for i, name := range w.TopSites() {
				fmt.Fprintf(bw, "%d,%s\r\n", i+1, name)
			}
			if err := bw.Flush(); err != nil {
				log.Warn("serve top sites", "err", err)
			}
		}
	}
	mux.HandleFunc("GET /allowlists/tranco/top-1m.csv", top(false))
	mux.HandleFunc("GET /allowlists/tranco/top-1m.csv.zip", top(true))
	mux.HandleFunc("GET /allowlists/cdn-ranges.txt", func(rw http.ResponseWriter, r *http.Request) {
		if notModified(rw, r, fmt.Sprintf(`"cdn-%d"`, w.Seed)) {
			return
		}
		rw.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(rw, w.CDNRangesText())
	})
	return mux
}
