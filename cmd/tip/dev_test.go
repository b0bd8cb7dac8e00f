package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tip-project/tip/config"
)

// TestDevUpHandsItsConfigurationFileOn: the processes `tip dev up` starts run in
// folders of their own, so the file it read (--config, a relative $TIP_CONFIG,
// ./tip.yaml) reaches them by its absolute path, and no file stays none.
func TestDevUpHandsItsConfigurationFileOn(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(config.EnvFile, "")
	for _, c := range []struct {
		name, flag, env, cwdFile string
		want                     []string
	}{
		{name: "none", want: nil},
		{name: "flag", flag: "config/lab.tip.yaml", env: "other.yaml", want: []string{"TIP_CONFIG=" + filepath.Join(dir, "config/lab.tip.yaml")}},
		{name: "relative $TIP_CONFIG", env: "config/lab.tip.yaml", want: []string{"TIP_CONFIG=" + filepath.Join(dir, "config/lab.tip.yaml")}},
		{name: "./tip.yaml", cwdFile: "tip.yaml", want: []string{"TIP_CONFIG=" + filepath.Join(dir, "tip.yaml")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(config.EnvFile, c.env)
			if c.cwdFile != "" {
				if err := os.WriteFile(c.cwdFile, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(c.cwdFile)
			}
			got, err := configEnv(c.flag)
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("configEnv(%q) with $TIP_CONFIG=%q = %q, %v; want %q", c.flag, c.env, got, err, c.want)
			}
		})
	}
}
