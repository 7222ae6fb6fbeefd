package edge

// Freshness (RFC 9111 §4.2), its extensions (RFC 5861 stale-while-revalidate
// and stale-if-error, RFC 9213 CDN-Cache-Control) and the request's own
// Cache-Control directives (RFC 9111 §5.2.1), from the headers kept in an
// object's metadata.

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// heuristicCap bounds the Last-Modified heuristic lifetime.
const heuristicCap = 24 * time.Hour

// negativeTTL bounds the freshness of a stored non-200 response (404,
// 301, …) that carries no explicit freshness.
const negativeTTL = 10 * time.Second

// cacheControl holds the Cache-Control directives the edge acts on, of a
// response or of a request.
type cacheControl struct {
	// Response directives.
	noStore, noCache, private, public bool
	mustRevalidate, proxyRevalidate   bool
	maxAge, sMaxAge                   time.Duration
	hasMaxAge, hasSMaxAge             bool
	staleWhileRevalidate, staleIfErr  time.Duration
	hasSWR, hasSIE                    bool

	// Request-only directives (max-age and no-cache, no-store above apply
	// to both).
	maxStale     time.Duration
	hasMaxStale  bool // max-stale present; with no value it accepts any staleness
	anyStale     bool
	minFresh     time.Duration
	onlyIfCached bool
}

// parseCacheControl reads a Cache-Control (or CDN-Cache-Control) value.
// Unknown directives are ignored; a malformed delta-seconds counts as 0
// (stale), the conservative reading RFC 9111 §4.2.1 asks for. A directive
// given twice keeps its first value (§4.2.1: a cache may use the first).
func parseCacheControl(v string) cacheControl {
	var cc cacheControl
	for part := range strings.SplitSeq(v, ",") {
		name, val, hasVal := strings.Cut(strings.TrimSpace(part), "=")
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-store":
			cc.noStore = true
		case "no-cache":
			cc.noCache = true
		case "private":
			cc.private = true
		case "public":
			cc.public = true
		case "must-revalidate":
			cc.mustRevalidate = true
		case "proxy-revalidate":
			cc.proxyRevalidate = true
		case "max-age":
			if !cc.hasMaxAge {
				cc.maxAge, cc.hasMaxAge = deltaSeconds(val), true
			}
		case "s-maxage":
			if !cc.hasSMaxAge {
				cc.sMaxAge, cc.hasSMaxAge = deltaSeconds(val), true
			}
		case "stale-while-revalidate":
			if !cc.hasSWR {
				cc.staleWhileRevalidate, cc.hasSWR = deltaSeconds(val), true
			}
		case "stale-if-error":
			if !cc.hasSIE {
				cc.staleIfErr, cc.hasSIE = deltaSeconds(val), true
			}
		case "max-stale":
			if !cc.hasMaxStale {
				cc.hasMaxStale = true
				if hasVal {
					cc.maxStale = deltaSeconds(val)
				} else {
					cc.anyStale = true
				}
			}
		case "min-fresh":
			cc.minFresh = deltaSeconds(val)
		case "only-if-cached":
			cc.onlyIfCached = true
		}
	}
	return cc
}

func deltaSeconds(s string) time.Duration {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	const maxSecs = int64(1<<63-1) / int64(time.Second)
	return time.Duration(min(n, maxSecs)) * time.Second
}

// responseCC returns the directives a shared cache at the edge obeys for a
// response: CDN-Cache-Control when the origin sent it (RFC 9213 §2.1: a
// cache that uses it ignores Cache-Control and Expires), else
// Cache-Control. cdn reports which.
func responseCC(get func(string) string) (cc cacheControl, cdn bool) {
	if v := get("CDN-Cache-Control"); v != "" {
		return parseCacheControl(v), true
	}
	return parseCacheControl(get("Cache-Control")), false
}

func headerGetter(h http.Header) func(string) string {
	return func(name string) string { return strings.Join(h.Values(name), ", ") }
}

func metaGetter(m meta) func(string) string {
	return func(name string) string { return m.Header[name] }
}

// requestCC returns the request's directives; "Pragma: no-cache" counts as
// no-cache when the request has no Cache-Control (RFC 9111 §5.4).
func requestCC(r *http.Request) cacheControl {
	v := strings.Join(r.Header.Values("Cache-Control"), ",")
	cc := parseCacheControl(v)
	if v == "" {
		for _, p := range r.Header.Values("Pragma") {
			if strings.Contains(strings.ToLower(p), "no-cache") {
				cc.noCache = true
			}
		}
	}
	return cc
}

// storable reports whether a shared cache may store a 200 response with
// header h to a request without Authorization.
func storable(h http.Header) bool {
	return storableFor(h, false)
}

// storableFor is storable for a request that carried Authorization when
// authorized is set: then only a response marked public, s-maxage or
// must-revalidate may be stored (RFC 9111 §3.5).
func storableFor(h http.Header, authorized bool) bool {
	cc, _ := responseCC(headerGetter(h))
	if cc.noStore || cc.private {
		return false
	}
	if authorized && !cc.public && !cc.hasSMaxAge && !cc.mustRevalidate {
		return false
	}
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(f) == "*" {
				return false
			}
		}
	}
	return true
}

// lifetime is the freshness lifetime of a stored response: s-maxage, then
// max-age, then Expires − Date, then 10 % of Date − Last-Modified (capped),
// then def — read from CDN-Cache-Control instead when the origin sent it.
// Every difference is taken between two of the origin's own clock readings,
// so a skewed origin clock does not shift it.
func lifetime(m meta, def time.Duration) time.Duration {
	if m.Header[softPurgeMark] != "" {
		return 0
	}
	cc, cdn := responseCC(metaGetter(m))
	switch {
	case cc.noCache:
		return 0
	case cc.hasSMaxAge:
		return cc.sMaxAge
	case cc.hasMaxAge:
		return cc.maxAge
	}
	date, err := http.ParseTime(m.Header["Date"])
	if err != nil {
		date = m.Stored
	}
	if m.Status != 0 && m.Status != http.StatusOK {
		// Other statuses without explicit freshness (404, 301, …): briefly,
		// so a mistake at the origin does not stick.
		if exp, ok := m.Header["Expires"]; !ok || cdn {
			return min(def, negativeTTL)
		} else if t, err := http.ParseTime(exp); err == nil {
			return max(0, t.Sub(date))
		}
		return 0
	}
	if exp, ok := m.Header["Expires"]; ok && !cdn {
		t, err := http.ParseTime(exp)
		if err != nil {
			return 0 // invalid Expires ("0") means already expired
		}
		return max(0, t.Sub(date))
	}
	if lm, err := http.ParseTime(m.Header["Last-Modified"]); err == nil && date.After(lm) {
		return min(date.Sub(lm)/10, heuristicCap)
	}
	return def
}

// age is the current age of a stored response (RFC 9111 §4.2.3) from the
// origin's Age header at storage and the time held here since. The apparent
// age (now − Date) is left out on purpose: it only measures clock skew
// between this edge and the origin.
func age(m meta, now time.Time) time.Duration {
	return max(0, time.Duration(m.InitialAge)*time.Second+now.Sub(m.Stored))
}

// stalePolicy is the operator's bound on serving stale copies.
type stalePolicy struct {
	// defaultIfError applies when the response has no stale-if-error.
	defaultIfError time.Duration
	// maxIfError and maxWhileRevalidate cap the response's directives.
	maxIfError, maxWhileRevalidate time.Duration
}

// use says how a stored response may answer a request.
type use int

const (
	useStored     use = iota // fresh (or acceptably stale for the request): serve it
	useRevalidate            // serve it now and revalidate in the background (stale-while-revalidate)
	useFetch                 // fetch or revalidate first
)

// judge decides how the stored response m, whose freshness lifetime is
// life, may answer a request with directives rq at now.
func (p stalePolicy) judge(m meta, rq cacheControl, life time.Duration, now time.Time) use {
	ag := age(m, now)
	if rq.noCache || (rq.hasMaxAge && ag > rq.maxAge) {
		return useFetch
	}
	if ag+rq.minFresh < life {
		return useStored
	}
	cc, _ := responseCC(metaGetter(m))
	if cc.mustRevalidate || cc.proxyRevalidate || cc.noCache {
		return useFetch
	}
	staleness := ag - life
	if rq.hasMaxStale && rq.minFresh == 0 && (rq.anyStale || staleness <= rq.maxStale) {
		return useStored
	}
	if cc.hasSWR && staleness < min(cc.staleWhileRevalidate, p.maxWhileRevalidate) {
		return useRevalidate
	}
	if m.Header[softPurgeMark] != "" {
		// Soft-purged: served stale while one request revalidates it.
		return useRevalidate
	}
	return useFetch
}

// staleOnError reports whether m may be served stale at now because the
// origin failed (RFC 9111 §4.2.4, RFC 5861 §4): never under
// must-revalidate, proxy-revalidate or no-cache; otherwise while its
// staleness is within stale-if-error (capped), or the operator's default
// when the response has none.
func (p stalePolicy) staleOnError(m meta, life time.Duration, now time.Time) bool {
	cc, _ := responseCC(metaGetter(m))
	if cc.mustRevalidate || cc.proxyRevalidate || cc.noCache {
		return false
	}
	window := p.defaultIfError
	if cc.hasSIE {
		window = min(cc.staleIfErr, p.maxIfError)
	}
	return age(m, now)-life <= window
}

// ttl is the remaining freshness of m (lifetime life) at now in whole
// seconds (negative once stale), as Cache-Status reports it.
func ttl(m meta, life time.Duration, now time.Time) int64 {
	return int64((life - age(m, now)) / time.Second)
}
