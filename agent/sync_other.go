//go:build !linux

package agent

import (
	"errors"
	"io/fs"
	"os"
)

// syncPaths makes the given files and folders durable, one fsync each; a path
// gone since (a temporary file already renamed) is skipped.
func syncPaths(root string, paths []string) error {
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
