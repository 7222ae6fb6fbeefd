//go:build !linux

package edge

import (
	"os"
	"time"
)

// fileID is what identifies a file's contents as unchanged since it was
// last looked at; off Linux only the size and modification time.
type fileID struct {
	size  int64
	mtime time.Time
}

func statID(f *os.File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	return fileID{size: fi.Size(), mtime: fi.ModTime()}, nil
}
