package edge

// Purging, on the admin handler (its own listener): by URL, by prefix, by
// surrogate key (the origin's Surrogate-Key response header, as Fastly
// uses it) or everything, hard (removed) or soft (marked stale: served
// stale while one request revalidates it). Shaped like Fastly's and
// Cloudflare's APIs:
//
//	PURGE /path                       Host names the property; Fastly-Soft-Purge: 1 for soft
//	POST /purge/key/{surrogate-key}   Fastly's purge by key
//	POST /purge_all
//	POST /purge  {"files": [...], "prefixes": [...], "tags": [...], "purge_everything": false, "soft": false}
//	                                  Cloudflare's purge_cache body ("tags" = surrogate keys;
//	                                  "files" are paths or URLs whose host names the property)
//
// Every admin request needs "Authorization: Bearer TOKEN" (or Fastly-Key:
// TOKEN) with the configured admin token, compared in constant time.

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// softPurgeMark is the meta header that marks a soft-purged copy: stale
// from then on, and servable stale while it is revalidated. It is never
// sent to clients (hiddenHeaders) nor taken from the origin (the origin's
// headers are copied by name from storedHeaders and semanticHeaders).
const softPurgeMark = "Edgeswarm-Soft-Purged"

// maxSurrogateKeys bounds the keys one object may be tagged with, and
// maxSurrogateKeyLen one key's length; more are ignored.
const (
	maxSurrogateKeys   = 64
	maxSurrogateKeyLen = 256
	maxPurgeBody       = 1 << 20
	maxPurgeItems      = 10000
)

// surrogateIndex maps surrogate keys to the cache keys tagged with them.
// Entries of evicted objects linger until purged or the index is rebuilt;
// a purge skips keys no longer stored.
type surrogateIndex struct {
	mu    sync.Mutex
	byTag map[string]map[string]struct{} // guarded by mu
	size  int                            // guarded by mu; entries
	limit int
}

func surrogateKeys(v string) []string {
	var out []string
	for _, k := range strings.Fields(v) {
		if len(k) <= maxSurrogateKeyLen && len(out) < maxSurrogateKeys {
			out = append(out, k)
		}
	}
	return out
}

// add tags cache key with the keys in header value v.
func (x *surrogateIndex) add(key, v string) {
	tags := surrogateKeys(v)
	if len(tags) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byTag == nil {
		x.byTag = make(map[string]map[string]struct{})
	}
	for _, t := range tags {
		set := x.byTag[t]
		if set == nil {
			set = make(map[string]struct{})
			x.byTag[t] = set
		}
		if _, ok := set[key]; !ok {
			if x.limit > 0 && x.size >= x.limit {
				return // full: such objects are still purged by URL, prefix or everything
			}
			set[key] = struct{}{}
			x.size++
		}
	}
}

// take returns the cache keys tagged with tag and forgets them.
func (x *surrogateIndex) take(tag string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	set := x.byTag[tag]
	delete(x.byTag, tag)
	x.size -= len(set)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

// keys returns every stored cache key.
func (c *cache) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.index))
	for k := range c.index {
		out = append(out, k)
	}
	return out
}

// indexStored rebuilds, at startup, the surrogate-key index and the Vary
// lists from the stored objects (so a restart costs no vary-miss).
func (s *Server) indexStored() {
	for _, k := range s.cache.keys() {
		_, m, ok := s.cache.lookup(k)
		if !ok {
			continue
		}
		if m.Header["Surrogate-Key"] != "" {
			s.surrogates.add(k, m.Header["Surrogate-Key"])
		}
		if base, _, ok := strings.Cut(k, keySep+"slice="); ok {
			s.slices.add(k, sliceTag(base))
			continue
		}
		if primary := primaryKey(k); primary != k {
			names := varyNames(http.Header{"Vary": {m.Header["Vary"]}})
			if len(names) > 0 {
				s.vary.learn(primary, names, k)
			}
		}
	}
}

// PurgeRequest is the body of POST /purge (Cloudflare's purge_cache).
type PurgeRequest struct {
	Files           []string `json:"files"`
	Prefixes        []string `json:"prefixes"`
	Tags            []string `json:"tags"`
	PurgeEverything bool     `json:"purge_everything"`
	Soft            bool     `json:"soft"`
}

// PurgeResponse reports what a purge did.
type PurgeResponse struct {
	Status string `json:"status"` // "ok"
	Purged int    `json:"purged"` // stored versions removed or marked stale
	Soft   bool   `json:"soft"`
}

// AdminHandler serves the purge API and peer revocation
// (handlePeersAdmin); it is meant for its own listener
// (edge --admin-listen), never the public one. With no token configured
// every request is refused.
func (s *Server) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, "admin", s.handleAdmin)
	})
}

func (s *Server) handleAdmin(w http.ResponseWriter, r *http.Request) error {
	if !s.adminAuthorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgeswarm admin"`)
		return errorf(http.StatusUnauthorized, "admin token missing or wrong")
	}
	if r.URL.Path == "/prefetch" || strings.HasPrefix(r.URL.Path, "/prefetch/") {
		return s.handlePrefetch(w, r)
	}
	if r.URL.Path == "/usage" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			return errorf(http.StatusMethodNotAllowed, "admin: /usage: want GET")
		}
		return s.handleUsage(w, r)
	}
	if strings.HasPrefix(r.URL.Path, "/peers/") {
		return s.handlePeersAdmin(w, r)
	}
	soft := r.Header.Get("Fastly-Soft-Purge") == "1" || r.Header.Get("Soft-Purge") == "1"
	var n int
	switch {
	case r.Method == "PURGE":
		_, key, err := s.requestKey(r.Host, r.URL)
		if err != nil {
			return err
		}
		n = s.purgeKeys(s.withSlices(append(s.vary.take(key), key)), soft)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/purge/key/"):
		tag, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/purge/key/"))
		if err != nil || tag == "" {
			return errorf(http.StatusBadRequest, "bad surrogate key")
		}
		n = s.purgeTag(tag, soft)
	case r.Method == http.MethodPost && r.URL.Path == "/purge_all":
		n = s.purgeKeys(s.cache.keys(), soft)
	case r.Method == http.MethodPost && r.URL.Path == "/purge":
		var req PurgeRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxPurgeBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return errorf(http.StatusBadRequest, "purge body: %v", err)
		}
		if len(req.Files)+len(req.Prefixes)+len(req.Tags) > maxPurgeItems {
			return errorf(http.StatusRequestEntityTooLarge, "at most %d files, prefixes and tags per purge", maxPurgeItems)
		}
		soft = soft || req.Soft
		var err error
		if n, err = s.purge(r, req, soft); err != nil {
			return err
		}
	default:
		return errorf(http.StatusNotFound, "admin: %s %s: want PURGE /path, POST /purge, /purge/key/KEY, /purge_all, /peers/revoke or /peers/unrevoke, GET /peers/revoked or /usage, or POST/GET /prefetch", r.Method, truncate(r.URL.Path, 80))
	}
	s.log.Info("purge", "method", r.Method, "path", truncate(r.URL.Path, 200), "soft", soft, "purged", n)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(PurgeResponse{Status: "ok", Purged: n, Soft: soft})
}

func (s *Server) adminAuthorized(r *http.Request) bool {
	tok := s.cfg.AdminToken
	if tok == "" {
		return false
	}
	got := r.Header.Get("Fastly-Key")
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = a
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1
}

// purge carries out a POST /purge body.
func (s *Server) purge(r *http.Request, req PurgeRequest, soft bool) (int, error) {
	if req.PurgeEverything {
		return s.purgeKeys(s.cache.keys(), soft), nil
	}
	var keys []string
	for _, f := range req.Files {
		u, err := url.Parse(f)
		if err != nil {
			return 0, errorf(http.StatusBadRequest, "file %q: %v", truncate(f, 100), err)
		}
		host := r.Host
		if u.Host != "" {
			host = u.Host
		}
		u.Scheme, u.Host = "", ""
		_, key, err := s.requestKey(host, u)
		if err != nil {
			return 0, err
		}
		keys = append(keys, s.withSlices(append(s.vary.take(key), key))...)
	}
	if len(req.Prefixes) > 0 {
		var prefixes []string
		for _, pf := range req.Prefixes {
			u, err := url.Parse(pf)
			if err != nil || !strings.HasPrefix(u.Path, "/") {
				return 0, errorf(http.StatusBadRequest, "prefix %q: want a path such as /videos/", truncate(pf, 100))
			}
			host := r.Host
			if u.Host != "" {
				host = u.Host
			}
			p := s.propertyFor(host)
			if p == nil {
				return 0, errorf(http.StatusMisdirectedRequest, "no property serves host %q", truncate(host, 100))
			}
			prefixes = append(prefixes, p.prefix+u.EscapedPath())
		}
		for _, k := range s.cache.keys() {
			for _, pf := range prefixes {
				if strings.HasPrefix(primaryKey(k), pf) {
					keys = append(keys, k)
					break
				}
			}
		}
	}
	n := s.purgeKeys(keys, soft)
	for _, t := range req.Tags {
		n += s.purgeTag(t, soft)
	}
	return n, nil
}

// withSlices adds the stored slices of keys to them (and forgets them:
// a purge removes or re-marks them all).
func (s *Server) withSlices(keys []string) []string {
	out := keys
	for _, k := range keys {
		out = append(out, s.slices.take(sliceTag(k))...)
	}
	return out
}

func (s *Server) purgeTag(tag string, soft bool) int {
	keys := s.surrogates.take(tag)
	if soft {
		// A soft-purged object keeps its tags: a later hard purge by the
		// same key must still find it.
		for _, k := range keys {
			if _, m, ok := s.cache.lookup(k); ok {
				s.surrogates.add(k, m.Header["Surrogate-Key"])
			}
		}
	}
	return s.purgeKeys(keys, soft)
}

// purgeKeys removes (hard) or marks stale (soft) the stored versions of
// keys; it returns how many it found.
func (s *Server) purgeKeys(keys []string, soft bool) int {
	n := 0
	now := s.now()
	for _, k := range keys {
		e, m, ok := s.cache.lookup(k)
		if !ok {
			continue
		}
		n++
		if !soft {
			s.cache.remove(e)
			continue
		}
		nm := m
		nm.Header = make(map[string]string, len(m.Header)+1)
		for hk, hv := range m.Header {
			nm.Header[hk] = hv
		}
		nm.Header[softPurgeMark] = now.UTC().Format(time.RFC3339Nano)
		if err := s.cache.updateMeta(e, nm); err != nil && !errors.Is(err, errNotCached) {
			s.log.Warn("soft purge failed; removing instead", "key", k, "err", err)
			s.cache.remove(e)
		}
	}
	s.purgedTotal.Add(float64(n))
	return n
}
