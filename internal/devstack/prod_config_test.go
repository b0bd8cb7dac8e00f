package devstack

import (
	"bytes"
	"os"
	"slices"
	"testing"
)

// TestServerConfigOfTheLocalStack: the production-like stack's server
// configuration, now built by ServerConfig, is the file the stack has written
// since it started (testdata/prod-server-config.yaml, as written before the
// builder was exported for deploy/).
func TestServerConfigOfTheLocalStack(t *testing.T) {
	s := Local("/state/prod", "/tools")
	if err := s.Production(); err != nil {
		t.Fatal(err)
	}
	got, err := ServerConfig(s.serverConfigParams())
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/prod-server-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the local stack's server config changed:\n%s", got)
	}
}

// TestSchemaSteps: per database, create, set up the versioning tables, update to
// the embedded schema; only the first two may find their work done.
func TestSchemaSteps(t *testing.T) {
	steps := SchemaSteps(SchemaParams{Host: "127.0.0.1", Port: "5433", User: "tip", Password: "tip"})
	conn := func(db string) []string {
		return []string{"--plugin", "postgres12", "--endpoint", "127.0.0.1", "--port", "5433", "--user", "tip", "--password", "tip", "--database", db}
	}
	want := []SchemaStep{
		{TemporalDB, append(conn(TemporalDB), "create-database"), true},
		{TemporalDB, append(conn(TemporalDB), "setup-schema", "-v", "0.0"), true},
		{TemporalDB, append(conn(TemporalDB), "update-schema", "--schema-name", "postgresql/v12/temporal"), false},
		{TemporalVisibilityDB, append(conn(TemporalVisibilityDB), "create-database"), true},
		{TemporalVisibilityDB, append(conn(TemporalVisibilityDB), "setup-schema", "-v", "0.0"), true},
		{TemporalVisibilityDB, append(conn(TemporalVisibilityDB), "update-schema", "--schema-name", "postgresql/v12/visibility"), false},
	}
	if !slices.EqualFunc(steps, want, func(a, b SchemaStep) bool {
		return a.Database == b.Database && a.OKIfExists == b.OKIfExists && slices.Equal(a.Args, b.Args)
	}) {
		t.Fatalf("schema steps:\n got %+v\nwant %+v", steps, want)
	}
	if got := steps[2].Command(); !slices.Equal(got, []string{"update-schema", "--schema-name", "postgresql/v12/temporal"}) {
		t.Fatalf("logged command %q", got)
	}
}
