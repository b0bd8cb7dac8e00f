package storage

import (
	"context"
	"errors"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/feeds"
)

// progressEvery is how many rows a COPY from a parsed feed takes between two
// calls of its progress function.
const progressEvery = 100000

// errEnough stops a parse that has all the rows it wants.
var errEnough = errors.New("enough rows")

// copyParsed parses body in format and COPYs one row per indicator into table (a
// table of tx); row returns nil to stop early. The parser pushes indicators and
// COPY pulls rows: a goroutine bridges the two so memory stays constant whatever
// the feed's size. progress, unless nil, is called every progressEvery rows
// with the rows taken so far. Parse errors and COPY errors come back separately:
// the first may be the feed's fault, the second is the database's.
func copyParsed(ctx context.Context, tx pgx.Tx, table string, cols []string, format string, opts feeds.Options,
	body io.Reader, row func(feeds.Indicator) []any, progress func(rows int)) (copied int64, stats feeds.Stats, parseErr, copyErr error) {
	rows := make(chan []any, 1024)
	parseCtx, stopParse := context.WithCancel(ctx)
	defer stopParse()
	go func() {
		defer close(rows)
		stats, parseErr = feeds.Parse(format, body, opts, func(ind feeds.Indicator) error {
			r := row(ind)
			if r == nil {
				return errEnough
			}
			select {
			case rows <- r:
				return nil
			case <-parseCtx.Done():
				return parseCtx.Err()
			}
		})
	}()
	copied, copyErr = tx.CopyFrom(ctx, pgx.Identifier{table}, cols, &chanSource{rows: rows, progress: progress})
	stopParse()
	for range rows { // let the parser finish before reading its results
	}
	if errors.Is(parseErr, errEnough) {
		parseErr = nil
	}
	return copied, stats, parseErr, copyErr
}

// chanSource feeds COPY from a channel of rows.
type chanSource struct {
	rows     <-chan []any
	progress func(rows int) // nil: none
	row      []any
	n        int
}

func (c *chanSource) Next() bool {
	row, ok := <-c.rows
	c.row = row
	c.n++
	if ok && c.n%progressEvery == 0 && c.progress != nil {
		c.progress(c.n)
	}
	return ok
}
func (c *chanSource) Values() ([]any, error) { return c.row, nil }
func (c *chanSource) Err() error             { return nil }
