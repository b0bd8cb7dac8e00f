package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tip-project/tip/internal/seed"
	"github.com/tip-project/tip/internal/testenv"
)

func TestReportWritesOnePageAndSaysWhereItIs(t *testing.T) {
	db, _ := seed.New(t)
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.DSN(t, db)
	setEnv(t, cfg)
	dir := filepath.Join(t.TempDir(), "report")
	out, err := runTip(t, "report", "--out", dir, "--since", "8760h", "--domains", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	path := filepath.Join(dir, "index.html")
	if !strings.Contains(out, path+"\n") || !strings.Contains(out, "file://"+path) || !strings.Contains(out, "1 of 3 monitored flux domains") {
		t.Errorf("output:\n%s", out)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{`<canvas id="source-weights"`, `<canvas id="flux-0-counts"`, "charts over time since"} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(html, `id="flux-1`) {
		t.Error("--domains 1 charted a second domain")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files written: the page must need no other", len(entries))
	}
	if out, err := runTip(t, "report"); err == nil || !strings.Contains(err.Error(), "out") {
		t.Errorf("without --out: %v\n%s", err, out)
	}
}
