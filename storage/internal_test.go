package storage

import (
	"testing"
	"testing/fstest"
)

func TestLoadMigrationsRejectsGapsAndBadNames(t *testing.T) {
	cases := map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {Data: []byte("SELECT 1")}, "m/0003_c.sql": {Data: []byte("SELECT 1")}},
		"repeat":   {"m/0001_a.sql": {Data: []byte("SELECT 1")}, "m/0001_b.sql": {Data: []byte("SELECT 1")}},
		"bad name": {"m/1_a.sql": {Data: []byte("SELECT 1")}},
	}
	for name, fsys := range cases {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: loaded without error", name)
		}
	}
	ms, err := loadMigrations(fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("SELECT 2")},
		"m/0001_a.sql": {Data: []byte("SELECT 1")},
	}, "m")
	if err != nil || len(ms) != 2 || ms[0].Name != "a" || ms[1].Version != 2 {
		t.Fatalf("loadMigrations = %+v, %v", ms, err)
	}
}

func TestAlreadyCompressed(t *testing.T) {
	cases := []struct {
		head []byte
		want bool
	}{
		{[]byte{0x1f, 0x8b, 8, 0}, true},
		{[]byte("7z\xbc\xaf\x27\x1c\x00\x04"), true},
		{[]byte("PK\x03\x04"), true},
		{[]byte("Received: from"), false},
		{[]byte("# Spamhaus DROP"), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := alreadyCompressed(c.head); got != c.want {
			t.Errorf("alreadyCompressed(%q) = %v, want %v", c.head, got, c.want)
		}
	}
}
