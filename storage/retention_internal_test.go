package storage

import "context"

// MigrateTo applies the migrations up to a version only: a database as an
// older TIP left it, for the tests of a later migration.
func MigrateTo(ctx context.Context, db *DB, version int) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	_, err = db.migrate(ctx, ms[:version])
	return err
}
