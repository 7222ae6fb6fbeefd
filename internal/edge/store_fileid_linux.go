package edge

import (
	"errors"
	"os"
	"syscall"
)

// fileID is what identifies a file's contents as unchanged since it was
// last looked at: a write through the file system moves mtime and ctime
// (with a fine-grained clock once someone has looked, on Linux ≥ 6.13).
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

func statID(f *os.File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, errors.New("no stat_t")
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}, nil
}
