package edge

// Freshness (RFC 9111 §4.2) from the headers kept in an object's metadata.

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// heuristicCap bounds the Last-Modified heuristic lifetime.
const heuristicCap = 24 * time.Hour

// cacheControl holds the Cache-Control directives a shared cache acts on.
type cacheControl struct {
	noStore, noCache, private          bool
	mustRevalidate, proxyRevalidate    bool
	maxAge, sMaxAge                    time.Duration
	hasMaxAge, hasSMaxAge, hasVaryStar bool
}

// parseCacheControl reads a Cache-Control value. Unknown directives are
// ignored; a malformed delta-seconds counts as 0 (stale), the conservative
// reading RFC 9111 §4.2.1 asks for.
func parseCacheControl(v string) cacheControl {
	var cc cacheControl
	for part := range strings.SplitSeq(v, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-store":
			cc.noStore = true
		case "no-cache":
			cc.noCache = true
		case "private":
			cc.private = true
		case "must-revalidate":
			cc.mustRevalidate = true
		case "proxy-revalidate":
			cc.proxyRevalidate = true
		case "max-age":
			cc.maxAge, cc.hasMaxAge = deltaSeconds(val), true
		case "s-maxage":
			cc.sMaxAge, cc.hasSMaxAge = deltaSeconds(val), true
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

// storable reports whether a shared cache may store a 200 response with
// header h.
func storable(h http.Header) bool {
	cc := parseCacheControl(strings.Join(h.Values("Cache-Control"), ","))
	if cc.noStore || cc.private {
		return false
	}
	for _, v := range h.Values("Vary") {
		if strings.TrimSpace(v) == "*" {
			return false
		}
	}
	return true
}

// lifetime is the freshness lifetime of a stored response: s-maxage, then
// max-age, then Expires − Date, then 10 % of Date − Last-Modified (capped),
// then def. Every difference is taken between two of the origin's own
// clock readings, so a skewed origin clock does not shift it.
func lifetime(m meta, def time.Duration) time.Duration {
	cc := parseCacheControl(m.Header["Cache-Control"])
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
	if exp, ok := m.Header["Expires"]; ok {
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

// mayServeStale reports whether a stale copy may be served when the origin
// cannot be reached (RFC 9111 §4.2.4, RFC 5861).
func mayServeStale(m meta) bool {
	cc := parseCacheControl(m.Header["Cache-Control"])
	return !cc.mustRevalidate && !cc.proxyRevalidate
}
