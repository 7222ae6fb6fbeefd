package peer

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// dataBlocks sums the bytes allocated to the chunk store's data files
// under dir.
func dataBlocks(t *testing.T, dir string) (int64, bool) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "objects", "*", "data"))
	var n int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			continue // removed whole by eviction meanwhile
		}
		n += st.Sys().(*syscall.Stat_t).Blocks * 512
	}
	return n, true
}
