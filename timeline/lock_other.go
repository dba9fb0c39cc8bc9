//go:build !unix

package timeline

import "os"

// lockDataDir takes dir for this process where flock exists (lock_unix.go);
// here nothing stops a second process on the same data directory.
func lockDataDir(dir string) (*os.File, error) { return nil, nil }
