package edge

// Vary (RFC 9111 §4.1): a response that varies on request headers is
// stored under a secondary key made of the values of those headers in the
// request the edge sent to the origin. The edge forwards to the origin,
// for cacheable fetches, only the content-negotiation headers
// (negotiatedHeaders) and the headers an object is known to vary on, and
// always asks for identity encoding; so a cached body can depend on no
// other header of any client (no unkeyed input), and Vary: Accept-Encoding
// costs nothing (every client gets the identity body).

import (
	"net/http"
	"slices"
	"strings"
	"sync"
)

// keySep separates a cache key's URL from its secondary key. Request URIs
// cannot hold a NUL (net/http refuses control bytes in the request line).
const keySep = "\x00"

// negotiatedHeaders are forwarded on every cacheable fetch: the origin may
// negotiate on them, and Vary then keys the stored copy on them.
var negotiatedHeaders = []string{"Accept", "Accept-Language"}

// maxVariants bounds the secondary keys remembered per URL; a URL varying
// on more (say, User-Agent) is passed through past it.
const maxVariants = 64

// maxVaryURLs bounds the URLs whose Vary lists are remembered.
const maxVaryURLs = 100000

// varyIndex remembers, per URL, the header names its last stored response
// varied on and the secondary keys stored for it (for invalidation).
type varyIndex struct {
	mu    sync.Mutex
	byURL map[string]*varyInfo // guarded by mu
}

type varyInfo struct {
	names []string            // canonical header names, sorted; never mutated
	keys  map[string]struct{} // full cache keys stored with a secondary key
}

// primaryKey returns the URL part of a cache key.
func primaryKey(key string) string {
	p, _, _ := strings.Cut(key, keySep)
	return p
}

// varyNames parses a response's Vary into sorted canonical header names,
// Accept-Encoding left out (the edge always sends identity).
func varyNames(h http.Header) []string {
	var names []string
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			n := http.CanonicalHeaderKey(strings.TrimSpace(f))
			if n == "" || n == "Accept-Encoding" || slices.Contains(names, n) {
				continue
			}
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// normValue is a header's value as compared for Vary: field lines joined,
// whitespace around commas and at the ends removed.
func normValue(h http.Header, name string) string {
	vs := h.Values(name)
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				parts = append(parts, strings.Join(strings.Fields(f), " "))
			}
		}
	}
	return strings.Join(parts, ",")
}

// secondaryKey is primary plus the values of names in h.
func secondaryKey(primary string, names []string, h http.Header) string {
	if len(names) == 0 {
		return primary
	}
	var b strings.Builder
	b.WriteString(primary)
	for _, n := range names {
		b.WriteString(keySep)
		b.WriteString(strings.ToLower(n))
		b.WriteByte('=')
		b.WriteString(normValue(h, n))
	}
	return b.String()
}

// names returns the Vary names known for primary (nil: none or unknown).
func (v *varyIndex) names(primary string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if vi := v.byURL[primary]; vi != nil {
		return vi.names
	}
	return nil
}

// learn records that primary's response varies on names and was stored
// under key. It reports false when primary already has maxVariants keys
// (the caller then does not store).
func (v *varyIndex) learn(primary string, names []string, key string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	vi := v.byURL[primary]
	if len(names) == 0 {
		if vi != nil {
			vi.names = nil
		}
		return true
	}
	if vi == nil {
		if v.byURL == nil {
			v.byURL = make(map[string]*varyInfo)
		}
		if len(v.byURL) >= maxVaryURLs {
			clear(v.byURL) // forgetting costs a vary-miss per URL, never a wrong body
		}
		vi = &varyInfo{keys: make(map[string]struct{})}
		v.byURL[primary] = vi
	}
	if !slices.Equal(vi.names, names) {
		vi.names = names
	}
	if _, ok := vi.keys[key]; !ok {
		if len(vi.keys) >= maxVariants {
			return false
		}
		vi.keys[key] = struct{}{}
	}
	return true
}

// keys returns the secondary keys stored for primary and forgets them.
func (v *varyIndex) take(primary string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	vi := v.byURL[primary]
	if vi == nil {
		return nil
	}
	delete(v.byURL, primary)
	out := make([]string, 0, len(vi.keys))
	for k := range vi.keys {
		out = append(out, k)
	}
	return out
}
