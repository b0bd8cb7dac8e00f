package lookup

import "time"

// SetClock sets the clock an index scores with, so a test compares its
// documents with FromDB's at one time.
func SetClock(x *Index, now func() time.Time) { x.now = now }
