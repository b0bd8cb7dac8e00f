// Package browser is the harness of the browser tests: a headless Chromium
// (Debian's chromium, driven over the DevTools protocol by chromedp) for one
// test, kept off the network — it loads file:// pages and servers on the
// loopback only — with what the page threw and logged, the URLs it requested,
// and screenshots saved as test artifacts.
//
//	b := browser.New(t)
//	if err := b.Navigate(ctx, browser.FileURL(path)); err != nil { ... }
//	var title string
//	err := b.Eval(ctx, `document.title`, &title)
//	b.Screenshot(t, "page")
package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// DefaultChromium is Debian's Chromium; $TIP_CHROMIUM names another binary.
const DefaultChromium = "/usr/bin/chromium"

// Timeout bounds one call (a navigation, an evaluation, a screenshot) when the
// caller's context has no earlier deadline.
const Timeout = 30 * time.Second

// Browser is a headless Chromium with one tab, for one test.
type Browser struct {
	tab context.Context

	mu       sync.Mutex
	errors   []string
	requests []string
}

// Path is the Chromium binary the tests run: $TIP_CHROMIUM, else DefaultChromium.
func Path() string {
	if p := os.Getenv("TIP_CHROMIUM"); p != "" {
		return p
	}
	return DefaultChromium
}

// New starts a headless Chromium for the test and closes it when the test
// ends. It skips the test under -short and fails it when Chromium is missing or
// does not start.
func New(t testing.TB) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: needs Chromium (run without -short)")
	}
	path := Path()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("browser: no Chromium at %s (%v): install Debian's chromium (`make tools` does) or set TIP_CHROMIUM", path, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, // also hides scrollbars and mutes audio
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		// Off the network: every request that is not for the loopback (which
		// Chromium never proxies) goes to a proxy that is not there, and no
		// host but localhost, 127.0.0.1 and ::1 resolves.
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]"),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	b := &Browser{tab: tab}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelTab()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not run under a timeout, which
	// would end the browser with it, so the start is timed from outside.
	started := make(chan error, 1)
	go func() { started <- chromedp.Listen(tab, b.record) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("browser: starting %s: %v", path, err)
		}
	case <-time.After(Timeout):
		t.Fatalf("browser: %s did not start within %s", path, Timeout)
	}
	return b
}

// record keeps the page's uncaught exceptions, console errors and browser log
// errors, and the URLs requested. It runs in the loop reading the browser's
// messages, before the reply of a command that followed the event.
func (b *Browser) record(ev any) {
	var msg, req string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			first, _, _ := strings.Cut(d.Exception.Description, "\n")
			msg += " " + first
		}
		if d.URL != "" {
			msg += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range e.Args {
			switch {
			case a.Type == runtime.RemoteObjectTypeString:
				var s string
				_ = json.Unmarshal(a.Value, &s)
				parts = append(parts, s)
			case a.Description != "":
				parts = append(parts, a.Description)
			default:
				parts = append(parts, string(a.Value))
			}
		}
		msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
	case *log.EventEntryAdded:
		if e.Entry.Level != log.EntryLevelError {
			return
		}
		msg = "log: " + e.Entry.Text
		if e.Entry.URL != "" {
			msg += " (" + e.Entry.URL + ")"
		}
	case *network.EventRequestWillBeSent:
		req = e.Request.URL
	default:
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if msg != "" {
		b.errors = append(b.errors, msg)
	}
	if req != "" {
		b.requests = append(b.requests, req)
	}
}

// Run runs actions in the tab, in order, bounded by ctx and Timeout.
func (b *Browser) Run(ctx context.Context, actions ...chromedp.Action[chromedp.Void]) error {
	_, err := Do(ctx, b, chromedp.Steps(actions...))
	return err
}

// Do runs a chromedp action that returns a value (chromedp.Text,
// chromedp.Evaluate, chromedp.Screenshot, ...) in the tab, bounded by ctx and
// Timeout.
func Do[T any](ctx context.Context, b *Browser, action chromedp.Action[T]) (T, error) {
	run, cancel := b.bound(ctx)
	defer cancel()
	return chromedp.Run(run, action)
}

// bound derives a context of the tab that ends with ctx or after Timeout.
func (b *Browser) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	run, cancel := context.WithTimeout(b.tab, Timeout)
	stop := context.AfterFunc(ctx, cancel)
	return run, func() { stop(); cancel() }
}

// Local reports whether a URL is one the harness lets the browser open: a
// file, or a server on localhost, 127.0.0.1 or ::1.
func Local(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "file":
		return true
	case "http", "https", "ws", "wss":
		switch u.Hostname() {
		case "localhost", "127.0.0.1", "::1":
			return true
		}
	}
	return false
}

// Navigate opens a file:// or loopback URL and waits for the page to load.
func (b *Browser) Navigate(ctx context.Context, url string) error {
	if !Local(url) {
		return fmt.Errorf("browser: %s is neither a file nor on the loopback: the tests run offline", url)
	}
	if err := b.Run(ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("browser: open %s: %w", url, err)
	}
	return nil
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise) and
// decodes its JSON value into out (nil ignores it).
func (b *Browser) Eval(ctx context.Context, expr string, out any) error {
	raw, err := Do(ctx, b, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return fmt.Errorf("browser: evaluate %.60q: %w", expr, err)
	}
	if out == nil {
		return nil
	}
	if len(raw) == 0 {
		raw = []byte("null") // undefined
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("browser: evaluate %.60q: %w", expr, err)
	}
	return nil
}

// WaitFor waits until a JavaScript expression is truthy, up to Timeout.
func (b *Browser) WaitFor(ctx context.Context, expr string) error {
	if _, err := Do(ctx, b, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(Timeout))); err != nil {
		return fmt.Errorf("browser: waiting for %.60q: %w", expr, err)
	}
	return nil
}

// Errors returns what went wrong in the pages so far: uncaught exceptions,
// console.error and console.assert calls, and the browser's error log (such as
// a resource that failed to load), each prefixed with its kind.
func (b *Browser) Errors() []string {
	b.flush()
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// Requests returns every URL the pages requested so far, in order.
func (b *Browser) Requests() []string {
	b.flush()
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// flush makes one round trip to the browser: every event sent before its reply
// has then been recorded.
func (b *Browser) flush() {
	_ = b.Eval(context.Background(), "0", nil)
}

// Screenshot saves a full-page PNG of the tab as name.png among the test's
// artifacts and returns its path; a failure fails the test.
func (b *Browser) Screenshot(t testing.TB, name string) string {
	t.Helper()
	png, err := Do(context.Background(), b, chromedp.FullScreenshot(100))
	return save(t, name, png, err)
}

// ScreenshotElement saves a PNG of the first element matching a CSS selector
// as name.png among the test's artifacts and returns its path.
func (b *Browser) ScreenshotElement(t testing.TB, name, selector string) string {
	t.Helper()
	png, err := Do(context.Background(), b, chromedp.Screenshot(chromedp.CSS(selector)))
	return save(t, name, png, err)
}

func save(t testing.TB, name string, png []byte, err error) string {
	t.Helper()
	if err != nil {
		t.Errorf("browser: screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(ArtifactsDir(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("browser: screenshot %s: %v", name, err)
		return ""
	}
	t.Logf("screenshot %s", path)
	return path
}

// cleared holds the artifact folders emptied in this run: a test's folder
// keeps only what its last run saved.
var cleared sync.Map

// ArtifactsDir is the folder of the test's artifacts, created (and emptied of
// a previous run's) on first use: <$TIP_TEST_ARTIFACTS>/<test name>, by default
// under state/test-artifacts at the module's root (git ignores state/).
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("TIP_TEST_ARTIFACTS")
	if root == "" {
		mod, err := moduleRoot()
		if err != nil {
			t.Fatalf("browser: artifacts: %v", err)
		}
		root = filepath.Join(mod, "state", "test-artifacts")
	}
	dir := filepath.Join(root, filepath.FromSlash(sanitize(t.Name())))
	if _, done := cleared.LoadOrStore(dir, true); !done {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatalf("browser: artifacts: %v", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browser: artifacts: %v", err)
	}
	return dir
}

// sanitize keeps a test name's letters, digits, '-', '_', '.' and the '/' of
// subtests; anything else becomes '_'.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '/':
			return r
		}
		return '_'
	}, name)
}

// startDir is the working folder the test binary started in, its package's
// folder: a test may change folder (t.Chdir) before it saves a screenshot.
var startDir, startDirErr = os.Getwd()

// moduleRoot walks up from the package's folder to go.mod.
func moduleRoot() (string, error) {
	dir, err := startDir, startDirErr
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above " + dir)
		}
	}
}

// FileURL is the file:// URL of a local path.
func FileURL(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}
