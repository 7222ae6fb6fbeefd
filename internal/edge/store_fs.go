package edge

// The file system the disk cache writes through, and what happens when a
// write fails: the cache evicts to make room and tries once more, and a
// fill whose body still cannot be stored is passed through to its
// clients, so a full or failing disk never fails a request.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// errStore wraps every failure to write the cache. A fill that meets it
// passes the response through instead of failing (storeFailed).
var errStore = errors.New("cache store failed")

// storeFS creates the files the cache writes. osFS is the real one; tests
// inject one that runs out of space.
type storeFS interface {
	CreateTemp(dir, pattern string) (storeFile, error)
}

// storeFile is a file being written.
type storeFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (storeFile, error) { return os.CreateTemp(dir, pattern) }

// Free reports the bytes an unprivileged writer may still put on dir's
// file system.
func (osFS) Free(dir string) (int64, error) { return diskFree(dir) }

// isNoSpace reports whether err means the disk (or the quota) is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// tempFile is an object body being written into tmp/. It takes the
// block checksums of the bytes as they pass, and when the disk is full it
// has the cache evict to make room and tries once more.
type tempFile struct {
	c   *cache
	f   storeFile
	sum blockSummer
	n   int64 // bytes written
	err error // first failure, sticky; wraps errStore
}

// createTemp starts a new temp file for an object body.
func (c *cache) createTemp() (*tempFile, error) {
	var f storeFile
	err := c.withRoom(0, func() (err error) {
		f, err = c.fs.CreateTemp(c.tmpDir(), "w-*")
		return err
	})
	if err != nil {
		return nil, wrapStore("create", err)
	}
	return &tempFile{c: c, f: f}, nil
}

func (t *tempFile) Name() string { return t.f.Name() }

func (t *tempFile) Write(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	var n int
	err := t.c.withRoom(int64(len(p)), func() error {
		m, err := t.f.Write(p[n:])
		n += m
		return err
	})
	t.sum.write(p[:n])
	t.n += int64(n)
	if err != nil {
		t.err = wrapStore("write", err)
		return n, t.err
	}
	return n, nil
}

func (t *tempFile) Sync() error {
	if t.err != nil {
		return t.err
	}
	// No retry: after a failed fsync the kernel may have dropped the
	// dirty pages, so the file can no longer be trusted.
	if err := t.f.Sync(); err != nil {
		t.err = t.c.storeError("sync", err)
	}
	return t.err
}

func (t *tempFile) Close() error {
	if err := t.f.Close(); err != nil && t.err == nil {
		t.err = t.c.storeError("close", err)
	}
	return t.err
}

// withRoom runs op, a write; if the disk is full, it evicts to make room
// for need bytes and runs op once more. Every failure is counted.
func (c *cache) withRoom(need int64, op func() error) error {
	err := op()
	if err == nil {
		return nil
	}
	c.storeErrors.Add(1)
	if isNoSpace(err) && c.freeSpace(need) {
		if err = op(); err != nil {
			c.storeErrors.Add(1)
		}
	}
	return err
}

// storeError counts a failed write and wraps it in errStore.
func (c *cache) storeError(op string, err error) error {
	c.storeErrors.Add(1)
	return wrapStore(op, err)
}

// wrapStore wraps a counted failure in errStore.
func wrapStore(op string, err error) error { return fmt.Errorf("%w: %s: %w", errStore, op, err) }

// freeSpace evicts versions, in the policy's order, until need bytes
// plus some slack are released, because the disk filled up before the
// budget did. It reports whether it evicted anything. Space held by files
// still open for reading comes back only when they are closed.
func (c *cache) freeSpace(need int64) bool {
	target := need + min(c.budget/64, 16<<20)
	var victims []*entry
	var freed int64
	c.mu.Lock()
	for freed < target {
		k, ok := c.policy.Evict()
		if !ok {
			break
		}
		if v := c.index[k]; v != nil {
			c.unindexLocked(v)
			victims = append(victims, v)
			freed += v.size
		}
	}
	left := c.total
	c.mu.Unlock()
	for _, v := range victims {
		c.removeFiles(v.id)
	}
	c.spaceEvictions.Add(int64(len(victims)))
	c.log.Warn("cache: disk full before the cache budget; evicted to make room (lower the cache size to the disk)",
		"evicted", len(victims), "freed_bytes", freed, "cached_bytes", left, "budget", c.budget)
	return len(victims) > 0
}

// storeFailed answers a fill whose body could not be stored: every client
// waiting on it fetches from the origin itself, as for an object too large
// to store. The response is not remembered as uncacheable: the disk may
// have room again for the next request.
func (s *Server) storeFailed(key string, err error) (*fillResult, error) {
	s.log.Warn("cache: cannot store; passing through", "key", key, "err", err)
	return &fillResult{status: statusPass, direct: true}, nil
}

// collectors are the cache's metrics.
func (c *cache) collectors() []prometheus.Collector {
	counter := func(name, help string, v func() int64, labels prometheus.Labels) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v()) })
	}
	const evictHelp = "Object versions evicted, by reason: budget (the byte or object budget) or disk_full (the disk filled before the budget)."
	return []prometheus.Collector{
		counter("edgeswarm_edge_store_errors_total",
			"Writes to the disk cache that failed (disk full, I/O error); the response is passed through.",
			c.storeErrors.Load, nil),
		counter("edgeswarm_edge_corrupt_objects_total",
			"Stored objects whose data failed its checksum when read; each is dropped and refetched.",
			c.corrupt.Load, nil),
		counter("edgeswarm_edge_cache_evictions_total", evictHelp, c.evictions.Load, prometheus.Labels{"reason": "budget"}),
		counter("edgeswarm_edge_cache_evictions_total", evictHelp, c.spaceEvictions.Load, prometheus.Labels{"reason": "disk_full"}),
		counter("edgeswarm_edge_hot_hits_total",
			"Hits of small objects served from their verified in-memory copy (the hot set), without reading the disk.",
			c.hot.hits.Load, nil),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeswarm_edge_hot_bytes",
			Help: "Bytes of verified in-memory copies of small objects held (the hot set; edge --hot-cache-size)."},
			func() float64 { return float64(c.hotBytes()) }),
	}
}
