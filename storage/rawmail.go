package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PackedMail returns where a raw mail was packed, or ErrNotFound for a mail
// with no pack: one stored before packs (an object of its own), or none at all.
func (db *DB) PackedMail(ctx context.Context, sha string) (PackedMail, error) {
	p := PackedMail{SHA256: sha}
	err := db.pool.QueryRow(ctx, `SELECT pack_key, pack_offset, pack_length, size FROM spam_raw WHERE sha256 = $1`, sha).
		Scan(&p.Pack, &p.Offset, &p.Length, &p.Size)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("%w: no packed mail %s", ErrNotFound, sha)
	}
	if err != nil {
		return p, fmt.Errorf("packed mail %s: %w", sha, err)
	}
	return p, nil
}

// RawMail returns a raw mail by its SHA-256, checked against it (ErrCorrupt
// otherwise): from its pack, or, for a mail stored before packs, from its own
// object under its SHA-256.
func RawMail(ctx context.Context, db *DB, blobs *BlobStore, sha string) ([]byte, error) {
	if !hexSHA.MatchString(sha) {
		return nil, fmt.Errorf("mail: %q is not a lower-case hex SHA-256", sha)
	}
	p, err := db.PackedMail(ctx, sha)
	switch {
	case err == nil:
		return blobs.ReadPackedMail(ctx, p)
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	return blobs.ReadAll(ctx, sha)
}
