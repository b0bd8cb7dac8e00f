package storage

import "github.com/tip-project/tip/textcap"

// MaxErrorText bounds an error text recorded in a row (source_runs.error,
// sources.last_attempt_error, allowlists.error, spam_archives.error). Such a text
// may quote a feed or a server answer; callers bound what they build, and the
// write caps it again, so no outside input makes a row, or `tip sources` reading
// it, carry megabytes.
const MaxErrorText = 2 << 10

// ErrorText is s as recorded: at most MaxErrorText bytes, cut on a UTF-8 boundary
// with a note of how much was cut.
func ErrorText(s string) string { return textcap.Cap(s, MaxErrorText) }
