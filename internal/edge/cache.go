package edge

// The disk cache: one data file, one metadata file and (once built) one
// manifest file per stored object version, an in-memory index rebuilt from
// the metadata at startup, and eviction within a byte budget by a policy
// from internal/cachepolicy (S3-FIFO; docs/BENCHMARKS.md says why).
//
// Layout under the cache dir:
//
//	objects/ab/<id>.data      the body, exactly meta.Size bytes
//	objects/ab/<id>.meta      JSON meta and the body's block checksums;
//	                          its presence commits the version
//	objects/ab/<id>.manifest  the signed, encoded manifest
//	tmp/                      files being written; emptied at startup
//
// Every file is written to tmp/, fsynced and renamed into place. A version
// is never modified in place except its meta (revalidation); a new version
// gets a new id, so a reader holding an open data file is never disturbed.
// Data is checked against its checksums when read (store_checksum.go);
// writes go through an injectable file system and a full disk makes the
// cache evict, or the fill pass through, never fail (store_fs.go).

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/cachepolicy"
	"github.com/edgeswarm/edgeswarm/internal/core"
)

// errNotCached: the entry was evicted or replaced since it was looked up.
var errNotCached = errors.New("object not in cache")

// metaVersion 2 added the block checksums; older versions are dropped
// at startup (the cache is a cache) and refetched on demand.
const metaVersion = 2

// meta is what the metadata file holds about one stored response.
type meta struct {
	V   int    `json:"v"`
	Key string `json:"key"` // cache key: path and query
	URL string `json:"url"` // origin URL fetched
	// Status is always 200 today; kept so other statuses can be stored later.
	Status int `json:"status"`
	// Header holds the stored response headers (storedHeaders), one value
	// each. Never mutated once the meta is built: a new meta replaces it.
	Header map[string]string `json:"header"`
	// Stored is when the response (or its latest revalidation) arrived.
	Stored time.Time `json:"stored"`
	// InitialAge is the origin's Age header at Stored, in seconds.
	InitialAge int64 `json:"initial_age,omitempty"`
	Size       int64 `json:"size"`
}

// storedHeaders are the response headers kept with an object and sent with
// it. Hop-by-hop and per-client headers (Set-Cookie) are never stored.
var storedHeaders = []string{
	"Content-Type", "Content-Encoding", "Content-Language", "Content-Disposition",
	"ETag", "Last-Modified", "Cache-Control", "Expires", "Date",
	"Access-Control-Allow-Origin",
}

// validator is what names this version in its manifest.
func (m meta) validator() string {
	if v := m.Header["ETag"]; v != "" {
		return v
	}
	return m.Header["Last-Modified"]
}

func (m meta) check() error {
	switch {
	case m.V != metaVersion:
		return fmt.Errorf("meta version %d, want %d", m.V, metaVersion)
	case !strings.HasPrefix(m.Key, "/"):
		return fmt.Errorf("meta key %q", m.Key)
	case m.Size < 0:
		return fmt.Errorf("meta size %d", m.Size)
	}
	return nil
}

// entry is one stored object version.
type entry struct {
	id   string   // immutable; names its files
	key  string   // immutable
	size int64    // immutable
	sums []uint32 // immutable; CRC-32C of each sumBlockSize block of the data

	meta    meta           // guarded by cache.mu; replaced on revalidation
	man     *core.Manifest // guarded by cache.mu; nil until built
	manEnc  []byte         // guarded by cache.mu; man encoded
	removed bool           // guarded by cache.mu; evicted or replaced
	hot     []byte         // guarded by cache.mu; the verified data, when in the hot set
	hotFile *hotFile       // guarded by cache.mu; its open file, for sendfile (hotFileMin)
	check   verification   // guarded by cache.mu
}

// cacheConfig is what openCache needs.
type cacheConfig struct {
	dir        string
	budget     int64 // bytes, > 0
	maxObjects int   // > 0
	hotBudget  int64 // bytes of hot copies (see hot.go); 0 = none
	pub        ed25519.PublicKey
	log        *slog.Logger
	now        func() time.Time // nil = time.Now
	fs         storeFS          // nil = the OS
	policy     string           // "" = cachepolicy.Default
	// verifyEveryRead turns off the verified-once fast path: every read
	// is checked and nothing is sent with sendfile (benchmarks, tests).
	verifyEveryRead bool
}

type cache struct {
	dir             string
	budget          int64 // bytes; the object budget is the policy's
	log             *slog.Logger
	now             func() time.Time
	fs              storeFS
	verifyEveryRead atomic.Bool // see cacheConfig

	mu     sync.Mutex
	index  map[string]*entry      // guarded by mu; current version by key
	byRoot map[core.Hash][]*entry // guarded by mu; versions with a manifest
	policy cachepolicy.Policy     // guarded by mu; knows exactly the keys of index
	total  int64                  // guarded by mu; sum of indexed sizes
	hot    hotSet                 // guarded by mu

	storeErrors    atomic.Int64 // writes the disk refused
	corrupt        atomic.Int64 // versions dropped for failing their checksums
	evictions      atomic.Int64 // versions evicted for the budget
	spaceEvictions atomic.Int64 // versions evicted because the disk was full
}

func (c *cache) objPath(id, ext string) string {
	return filepath.Join(c.dir, "objects", id[:2], id+ext)
}

func (c *cache) tmpDir() string { return filepath.Join(c.dir, "tmp") }

// openCache prepares cfg.dir and rebuilds the index from the metadata
// files. Manifests that verify against cfg.pub are loaded too; others are
// deleted (rebuilt on demand).
func openCache(cfg cacheConfig) (*cache, error) {
	if cfg.policy == "" {
		cfg.policy = cachepolicy.Default
	}
	policy, err := cachepolicy.New(cfg.policy, cachepolicy.Limits{Bytes: cfg.budget, Objects: cfg.maxObjects})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.fs == nil {
		cfg.fs = osFS{}
	}
	dir := cfg.dir
	c := &cache{
		dir: dir, budget: cfg.budget, log: cfg.log, now: cfg.now, fs: cfg.fs,
		index: make(map[string]*entry), byRoot: make(map[core.Hash][]*entry), policy: policy,
	}
	c.verifyEveryRead.Store(cfg.verifyEveryRead)
	if cfg.hotBudget > 0 {
		c.hot.policy = cachepolicy.NewS3FIFO(cachepolicy.Limits{Bytes: cfg.hotBudget, Objects: int(max(cfg.hotBudget/512, 1))})
	}
	if err := os.RemoveAll(c.tmpDir()); err != nil {
		return nil, fmt.Errorf("cache: clear tmp: %w", err)
	}
	for _, d := range []string{c.tmpDir(), filepath.Join(dir, "objects")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	if err := c.scan(core.NewKeyRing(cfg.pub)); err != nil {
		return nil, err
	}
	return c, nil
}

// scan rebuilds the index. Anything inconsistent (a data file whose size
// does not match its meta, files without a meta, an older duplicate of a
// key) is deleted: the cache is a cache.
func (c *cache) scan(ring core.KeyRing) error {
	root := filepath.Join(c.dir, "objects")
	subdirs, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("cache: scan: %w", err)
	}
	var loaded []*entry
	for _, sd := range subdirs {
		if !sd.IsDir() {
			continue
		}
		dir := filepath.Join(root, sd.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("cache: scan: %w", err)
		}
		metas := map[string]bool{}
		for _, f := range files {
			if id, ok := strings.CutSuffix(f.Name(), ".meta"); ok {
				metas[id] = true
			}
		}
		for _, f := range files {
			name := f.Name()
			id := name[:len(name)-len(filepath.Ext(name))]
			if !validID(id) || !metas[id] || id[:2] != sd.Name() {
				c.log.Info("cache: removing stray file", "file", filepath.Join(dir, name))
				os.Remove(filepath.Join(dir, name))
			}
		}
		for id := range metas {
			if !validID(id) || id[:2] != sd.Name() {
				continue
			}
			e, err := c.load(id, ring)
			if err == nil && !c.fits(e.size) {
				err = fmt.Errorf("%d bytes, more than the cache budget %d", e.size, c.budget)
			}
			if err != nil {
				c.log.Info("cache: dropping object", "id", id, "err", err)
				c.removeFiles(id)
				continue
			}
			loaded = append(loaded, e)
		}
	}
	// Oldest first, as if stored in that order now, so that a duplicate
	// key keeps its newest version and the policy evicts the oldest.
	slices.SortFunc(loaded, func(a, b *entry) int { return a.meta.Stored.Compare(b.meta.Stored) })
	var victims []*entry
	c.mu.Lock()
	for _, e := range loaded {
		victims = append(victims, c.insertLocked(e)...)
	}
	c.mu.Unlock()
	for _, v := range victims {
		c.removeFiles(v.id)
	}
	c.log.Info("cache: index rebuilt", "objects", len(c.index), "bytes", c.total)
	return nil
}

func (c *cache) load(id string, ring core.KeyRing) (*entry, error) {
	b, err := os.ReadFile(c.objPath(id, ".meta"))
	if err != nil {
		return nil, err
	}
	var rec metaRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	m := rec.meta
	if err := m.check(); err != nil {
		return nil, err
	}
	sums, err := decodeSums(rec.Sums, m.Size)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(c.objPath(id, ".data"))
	if err != nil {
		return nil, err
	}
	if st.Size() != m.Size {
		return nil, fmt.Errorf("data is %d bytes, meta says %d", st.Size(), m.Size)
	}
	e := &entry{id: id, key: m.Key, size: m.Size, sums: sums, meta: m}
	enc, err := os.ReadFile(c.objPath(id, ".manifest"))
	if err == nil {
		man, perr := core.ParseManifest(enc, ring)
		if perr == nil && (man.URL != m.Key || man.Size != m.Size || man.Validator != m.validator()) {
			perr = errors.New("manifest does not describe this object")
		}
		if perr != nil {
			// Signed by another key or damaged: rebuild when asked.
			c.log.Info("cache: dropping manifest", "id", id, "err", perr)
			os.Remove(c.objPath(id, ".manifest"))
		} else {
			e.man, e.manEnc = man, enc
		}
	}
	return e, nil
}

// lookup returns the current version of key and its meta, marking it used.
func (c *cache) lookup(key string) (*entry, meta, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.index[key]
	if !ok {
		return nil, meta{}, false
	}
	c.policy.Hit(key)
	return e, e.meta, true
}

// open opens e's data for reading. Opening the file under mu means
// eviction (which removes from the index under mu before deleting files)
// cannot pull it away between the check and the open; once open, it stays
// readable. The reader checks the data against its checksums
// (store_checksum.go); a version found damaged before anything was read
// is dropped and errNotCached returned, so the caller fetches it anew.
func (c *cache) open(e *entry) (*objectReader, meta, error) {
	c.mu.Lock()
	if e.removed {
		c.mu.Unlock()
		return nil, meta{}, errNotCached
	}
	if r, ok := c.hotReaderLocked(e); ok {
		m := e.meta
		c.mu.Unlock()
		return r, m, nil
	}
	f, err := os.Open(c.objPath(e.id, ".data"))
	m := e.meta
	tid, trusted := c.trustedLocked(e)
	c.mu.Unlock()
	if err != nil {
		return nil, meta{}, fmt.Errorf("cache: open %s: %w", e.key, err)
	}
	r, err := c.newReader(e, f, tid, trusted)
	if err != nil {
		return nil, meta{}, err
	}
	return r, m, nil
}

// openRoot opens the data of a version with manifest root, as open does.
func (c *cache) openRoot(root core.Hash) (*objectReader, *core.Manifest, error) {
	c.mu.Lock()
	es := c.byRoot[root]
	if len(es) == 0 {
		c.mu.Unlock()
		return nil, nil, errNotCached
	}
	e := es[0]
	c.policy.Hit(e.key)
	f, err := os.Open(c.objPath(e.id, ".data"))
	man := e.man
	tid, trusted := c.trustedLocked(e)
	c.mu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("cache: open %s: %w", e.key, err)
	}
	r, err := c.newReader(e, f, tid, trusted)
	if err != nil {
		return nil, nil, err
	}
	return r, man, nil
}

// keyOfRoot returns the cache key of a stored version with that root.
func (c *cache) keyOfRoot(root core.Hash) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if es := c.byRoot[root]; len(es) > 0 {
		return es[0].key, true
	}
	return "", false
}

// manifestByRoot returns the manifest of a stored version with that root.
func (c *cache) manifestByRoot(root core.Hash) (*core.Manifest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if es := c.byRoot[root]; len(es) > 0 {
		return es[0].man, true
	}
	return nil, false
}

func (c *cache) manifest(e *entry) (*core.Manifest, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return e.man, e.manEnc
}

// fits reports whether an object of size bytes may be stored at all.
func (c *cache) fits(size int64) bool { return size <= c.budget }

// newID returns a fresh version id.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// commit makes a fully written, synced and closed temp data file the
// current version of m.Key: it renames the data into place, writes the
// meta with the checksums taken while the data was written (which commits
// the version), indexes it and evicts what no longer fits.
func (c *cache) commit(tmp *tempFile, m meta) (*entry, error) {
	if tmp.err != nil {
		return nil, tmp.err
	}
	if tmp.n != m.Size {
		return nil, fmt.Errorf("cache: store %s: %d bytes written, meta says %d", m.Key, tmp.n, m.Size)
	}
	sums := tmp.sum.finish()
	id := newID()
	if err := os.MkdirAll(filepath.Dir(c.objPath(id, "")), 0o755); err != nil {
		return nil, c.storeError("mkdir", err)
	}
	if err := os.Rename(tmp.Name(), c.objPath(id, ".data")); err != nil {
		return nil, c.storeError("rename", err)
	}
	if err := c.writeMeta(id, m, sums); err != nil {
		os.Remove(c.objPath(id, ".data"))
		return nil, err
	}
	e := &entry{id: id, key: m.Key, size: m.Size, sums: sums, meta: m}
	c.mu.Lock()
	victims := c.insertLocked(e)
	c.mu.Unlock()
	for _, v := range victims {
		c.removeFiles(v.id)
	}
	return e, nil
}

// insertLocked indexes e, replacing the key's previous version, and evicts
// what the policy picks until the budgets hold; e itself is never picked.
// It returns the versions whose files the caller must delete (outside mu).
func (c *cache) insertLocked(e *entry) []*entry {
	var victims []*entry
	if old, ok := c.index[e.key]; ok {
		// The policy keeps the key: Add below updates it.
		c.unindexLocked(old)
		victims = append(victims, old)
	}
	c.index[e.key] = e
	c.total += e.size
	if e.man != nil {
		c.byRoot[e.man.Root] = append(c.byRoot[e.man.Root], e)
	}
	for _, k := range c.policy.Add(e.key, e.size) {
		if v := c.index[k]; v != nil && v != e {
			c.unindexLocked(v)
			victims = append(victims, v)
			c.evictions.Add(1)
		}
	}
	return victims
}

// unindexLocked drops e from the index (not from the policy: callers that
// drop a key for good tell the policy themselves).
func (c *cache) unindexLocked(e *entry) {
	if e.removed {
		return
	}
	e.removed = true
	delete(c.index, e.key)
	c.total -= e.size
	c.dropHotLocked(e)
	if e.man != nil {
		es := c.byRoot[e.man.Root]
		for i, x := range es {
			if x == e {
				es = append(es[:i:i], es[i+1:]...)
				break
			}
		}
		if len(es) == 0 {
			delete(c.byRoot, e.man.Root)
		} else {
			c.byRoot[e.man.Root] = es
		}
	}
}

// remove drops e from the index and deletes its files.
func (c *cache) remove(e *entry) {
	c.mu.Lock()
	was := !e.removed
	if was {
		c.policy.Remove(e.key)
	}
	c.unindexLocked(e)
	c.mu.Unlock()
	if was {
		c.removeFiles(e.id)
	}
}

// removeFiles deletes a version's files, meta first so that a crash half
// way leaves only strays that the next scan removes.
func (c *cache) removeFiles(id string) {
	for _, ext := range []string{".meta", ".data", ".manifest"} {
		if err := os.Remove(c.objPath(id, ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cache: remove", "file", c.objPath(id, ext), "err", err)
		}
	}
}

// updateMeta replaces e's meta (after a 304) on disk and in memory.
func (c *cache) updateMeta(e *entry, m meta) error {
	if err := c.writeMeta(e.id, m, e.sums); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.removed {
		// Evicted meanwhile: the meta just written is a stray.
		os.Remove(c.objPath(e.id, ".meta"))
		return errNotCached
	}
	e.meta = m
	return nil
}

// metaRecord is what a .meta file holds: the meta and the checksums of
// the data, which belong to the body, not to its headers.
type metaRecord struct {
	meta
	Sums []byte `json:"crc32c"` // big-endian CRC-32C per sumBlockSize block
}

func (c *cache) writeMeta(id string, m meta, sums []uint32) error {
	b, err := json.Marshal(metaRecord{meta: m, Sums: encodeSums(sums)})
	if err != nil {
		return fmt.Errorf("cache: meta of %s: %w", m.Key, err)
	}
	if err := c.writeFile(c.objPath(id, ".meta"), b); err != nil {
		return fmt.Errorf("cache: meta of %s: %w", m.Key, err)
	}
	return nil
}

// setManifest persists a built manifest and indexes e by its root. If the
// disk refuses the file, the manifest is kept in memory only (rebuilt
// after a restart): a full disk never fails a request.
func (c *cache) setManifest(e *entry, man *core.Manifest, enc []byte) error {
	if err := c.writeFile(c.objPath(e.id, ".manifest"), enc); err != nil {
		c.log.Warn("cache: manifest kept in memory only", "key", e.key, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.removed {
		os.Remove(c.objPath(e.id, ".manifest"))
		return errNotCached
	}
	e.man, e.manEnc = man, enc
	c.byRoot[man.Root] = append(c.byRoot[man.Root], e)
	return nil
}

// writeFile writes data to path atomically and durably. When the disk is
// full it evicts to make room and tries once more; a failure wraps
// errStore.
func (c *cache) writeFile(path string, data []byte) error {
	err := c.withRoom(int64(len(data)), func() error { return c.writeFileOnce(path, data) })
	if err != nil {
		return wrapStore("write "+filepath.Base(path), err)
	}
	return nil
}

func (c *cache) writeFileOnce(path string, data []byte) error {
	f, err := c.fs.CreateTemp(c.tmpDir(), "w-*")
	if err != nil {
		return err
	}
	_, err = bytes.NewReader(data).WriteTo(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename into dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// usage returns the number of indexed objects and their total size.
func (c *cache) usage() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index), c.total
}

// removeQuiet deletes a file whose removal failing changes nothing: a
// stray temp file is cleared at the next startup.
func removeQuiet(path string) { _ = os.Remove(path) }
