package browser_test

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tip-project/tip/internal/browser"
)

func page(t *testing.T, html string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(path, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBrowserDrawsEvaluatesAndSavesScreenshots(t *testing.T) {
	ctx := context.Background()
	b := browser.New(t)
	path := page(t, `<!doctype html><title>drawn</title><body style="margin:0">
<canvas id="c" width="200" height="100"></canvas><div style="height:1500px">tall</div>
<script>const g = document.getElementById('c').getContext('2d'); g.fillStyle = '#c00'; g.fillRect(0, 0, 50, 20);
window.done = true;</script>`)
	if err := b.Navigate(ctx, browser.FileURL(path)); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(ctx, `window.done === true`); err != nil {
		t.Fatal(err)
	}
	var painted int
	if err := b.Eval(ctx, `(() => { const d = document.getElementById('c').getContext('2d').getImageData(0, 0, 200, 100).data;
		let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()`, &painted); err != nil {
		t.Fatal(err)
	}
	if painted != 50*20 {
		t.Errorf("%d pixels painted, want %d", painted, 50*20)
	}
	var title string
	if err := b.Eval(ctx, `Promise.resolve(document.title)`, &title); err != nil || title != "drawn" {
		t.Errorf("title %q, %v", title, err)
	}
	if text, err := browser.Do(ctx, b, chromedp.Text(chromedp.CSS("div"))); err != nil || text != "tall" {
		t.Errorf("a chromedp action: %q, %v", text, err)
	}
	full := b.Screenshot(t, "full")
	part := b.ScreenshotElement(t, "canvas", "#c")
	for _, c := range []struct {
		path       string
		minW, minH int
	}{{full, 1000, 1500}, {part, 200, 100}} {
		data, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if s := img.Bounds().Size(); s.X < c.minW || s.Y < c.minH {
			t.Errorf("%s is %v, want at least %dx%d", c.path, s, c.minW, c.minH)
		}
		if filepath.Dir(c.path) != browser.ArtifactsDir(t) {
			t.Errorf("%s is not among the test's artifacts (%s)", c.path, browser.ArtifactsDir(t))
		}
	}
	if errs := b.Errors(); len(errs) != 0 {
		t.Errorf("errors: %q", errs)
	}
}

func TestBrowserRecordsErrorsAndStaysOffTheNetwork(t *testing.T) {
	ctx := context.Background()
	b := browser.New(t)
	// A page on the loopback loads; the script it asks of another host never comes.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><script src="http://example.com/lib.js"></script><script src="http://192.0.2.1/lib.js"></script>
<script>console.error("bad", 42); window.loaded = typeof lib; throw new Error("boom");</script>`))
	}))
	defer srv.Close()
	if err := b.Navigate(ctx, srv.URL+"/page"); err != nil {
		t.Fatal(err)
	}
	var loaded string
	if err := b.Eval(ctx, `window.loaded`, &loaded); err != nil || loaded != "undefined" {
		t.Errorf("an off-loopback script ran: typeof lib = %q, %v", loaded, err)
	}
	errs := strings.Join(b.Errors(), "\n")
	t.Logf("errors:\n%s", errs)
	for _, want := range []string{"console.error: bad 42", "exception: Uncaught Error: boom", "example.com/lib.js", "192.0.2.1/lib.js"} {
		if !strings.Contains(errs, want) {
			t.Errorf("errors lack %q:\n%s", want, errs)
		}
	}
	reqs := b.Requests()
	if !slices.Contains(reqs, srv.URL+"/page") || !slices.Contains(reqs, "http://example.com/lib.js") {
		t.Errorf("requests %q", reqs)
	}
	if err := b.Navigate(ctx, "http://example.com/"); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("navigating off the loopback: %v", err)
	}
}

func TestLocal(t *testing.T) {
	for url, want := range map[string]bool{
		"file:///tmp/r/index.html":        true,
		"http://127.0.0.1:8233/":          true,
		"http://localhost:8480/truth":     true,
		"http://[::1]:9000/":              true,
		"https://127.0.0.2/":              false,
		"http://example.com/":             false,
		"http://10.0.0.1/":                false,
		"http://127.0.0.1.example.com/":   false,
		"data:text/html,<p>hi</p>":        false,
		"javascript:alert(1)":             false,
		"http://localhost.evil.example/x": false,
	} {
		if got := browser.Local(url); got != want {
			t.Errorf("Local(%q) = %v, want %v", url, got, want)
		}
	}
}

func TestArtifactsDir(t *testing.T) {
	root := t.TempDir()
	t.Setenv("TIP_TEST_ARTIFACTS", root)
	t.Run("a sub/test: odd", func(t *testing.T) {
		dir := browser.ArtifactsDir(t)
		if want := filepath.Join(root, "TestArtifactsDir", "a_sub", "test__odd"); dir != want {
			t.Errorf("dir %s, want %s", dir, want)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Errorf("not made: %v", err)
		}
	})
}
