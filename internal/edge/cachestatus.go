package edge

// The headers that say what the cache did: Cache-Status (RFC 9211), the
// older X-Cache, Via (RFC 9110 §7.6.3) and Age.

import (
	"net/http"
	"strconv"
	"strings"
)

// cacheName names this cache in Cache-Status and Via.
const cacheName = "edgeswarm"

// semanticHeaders are response headers stored with an object for the
// cache's own use besides storedHeaders.
var semanticHeaders = []string{"Vary", "CDN-Cache-Control", "Surrogate-Key", "Surrogate-Control", "Via", "Location"}

// hiddenHeaders are stored but not sent to clients: they are addressed to
// this cache (RFC 9213 §2.1; Surrogate-Key is the purge API's), or set per
// response (Date).
var hiddenHeaders = map[string]bool{
	"Date": true, "CDN-Cache-Control": true, "Surrogate-Key": true, "Surrogate-Control": true,
	softPurgeMark: true,
}

// decorate sets X-Cache, Cache-Status and Via on a response described by
// res (ttlSecs: the stored copy's remaining freshness, if storedCopy), and
// counts it.
func (s *Server) decorate(h http.Header, res *fillResult, ttlSecs int64, storedCopy bool) {
	h.Set("X-Cache", res.status)
	h.Set("Cache-Status", cacheStatus(res, ttlSecs, storedCopy))
	via := "1.1 " + cacheName
	if prev := strings.Join(h.Values("Via"), ", "); prev != "" {
		via = prev + ", " + via
	}
	h.Set("Via", via)
	s.countStatus(res.status)
}

// cacheStatus renders one Cache-Status member for res.
func cacheStatus(res *fillResult, ttlSecs int64, storedCopy bool) string {
	var b strings.Builder
	b.WriteString(cacheName)
	if res.status == statusHit || res.status == statusStale && res.detail == "stale-while-revalidate" {
		b.WriteString("; hit")
	}
	if res.fwd != "" {
		b.WriteString("; fwd=")
		b.WriteString(res.fwd)
		if res.fwdStatus != 0 {
			b.WriteString("; fwd-status=")
			b.WriteString(strconv.Itoa(res.fwdStatus))
		}
	}
	if res.stored {
		b.WriteString("; stored")
	}
	if res.collapsed {
		b.WriteString("; collapsed")
	}
	if storedCopy {
		b.WriteString("; ttl=")
		b.WriteString(strconv.FormatInt(ttlSecs, 10))
	}
	if res.detail != "" {
		b.WriteString(`; detail="`)
		b.WriteString(res.detail)
		b.WriteString(`"`)
	}
	return b.String()
}
