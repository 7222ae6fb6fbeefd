package chunkstore

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDiskBudgetFreesBlocks checks on Linux that eviction frees the data
// file's blocks (hole punching), so the disk really holds no more than the
// budget; and that a restart with a smaller budget trims the store.
func TestDiskBudgetFreesBlocks(t *testing.T) {
	dir := t.TempDir()
	const budget = 8 * testChunk
	s, err := NewDisk(dir, WithBudget(budget))
	if err != nil {
		t.Fatal(err)
	}
	vs := newVersions(t, s, 5)
	for _, v := range vs {
		for i := 0; i < 4; i++ {
			if err := v.write(t, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	blocks := dataBlocks(t, dir)
	if blocks > budget+testChunk {
		t.Fatalf("data files use %d bytes of disk, budget %d", blocks, budget)
	}
	t.Logf("20 chunks written through a budget of 8: data files use %d bytes on disk", blocks)
	for _, v := range vs {
		v.o.Close()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Restart with half the budget: the oldest versions go whole.
	s2, err := NewDisk(dir, WithBudget(budget/2))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	u := s2.Usage()
	if u.UsedBytes > budget/2 || u.UsedBytes == 0 {
		t.Fatalf("after restart with a smaller budget: %+v", u)
	}
	if blocks := dataBlocks(t, dir); blocks > budget/2+testChunk {
		t.Fatalf("data files use %d bytes after trim", blocks)
	}
	// Without a budget the store still counts what is there.
	s3, err := NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if got := s3.Usage().UsedBytes; got != u.UsedBytes {
		t.Fatalf("reopened without a budget: used %d, want %d", got, u.UsedBytes)
	}
}

// dataBlocks sums the allocated bytes of every data file under dir.
func dataBlocks(t *testing.T, dir string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "objects", "*", "data"))
	var n int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Sys().(*syscall.Stat_t).Blocks * 512
	}
	return n
}

// TestDiskOpenFreesUnheldBlocks: blocks of chunks the have-file does not
// list (written just before a crash, or corrupt) are freed when the object
// is opened, so they do not use disk the budget does not count.
func TestDiskOpenFreesUnheldBlocks(t *testing.T) {
	dir := t.TempDir()
	data := testObject(8*testChunk, 4)
	m := testManifestURL(t, data, "/crash")
	s, err := NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	o.WriteChunk(0, chunkOf(m, data, 0))
	o.Close()
	s.Close()
	// Bytes that are not the chunks land where chunks 1 to 7 go, and never
	// reach the have-file (verified chunks there would be kept: a restart
	// resumes with them).
	f, err := os.OpenFile(filepath.Join(dir, "objects", m.Root.String(), "data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xa5}, len(data)-testChunk)
	f.WriteAt(junk, testChunk)
	f.Close()
	if blocks := dataBlocks(t, dir); blocks < 8*testChunk {
		t.Fatalf("setup: %d bytes allocated", blocks)
	}
	s2, err := NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	o2, err := s2.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if got := o2.Have().Count(); got != 1 {
		t.Fatalf("holds %d chunks", got)
	}
	if blocks, used := dataBlocks(t, dir), s2.Usage().UsedBytes; blocks > used || used != testChunk {
		t.Fatalf("after open: %d bytes allocated, %d counted", blocks, used)
	}
	if got, err := o2.ReadChunk(0, nil); err != nil || !bytes.Equal(got, chunkOf(m, data, 0)) {
		t.Fatalf("the held chunk after punching the rest: %v", err)
	}
}
