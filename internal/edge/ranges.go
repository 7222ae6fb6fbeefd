package edge

// Range requests (RFC 9110 §14). The edge parses Range itself, strictly and
// without overflow, and rewrites it into a canonical form before
// net/http's ServeContent (which then handles If-Range, 206, 416 and
// multipart/byteranges): abusive range sets — overlapping, out of order,
// many small ones — are merged, and when what is left is not worth a
// partial response the Range is dropped and the whole object sent (200).

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// byteRange is one satisfiable range, last inclusive.
type byteRange struct{ first, last int64 }

// maxRanges is the most ranges a 206 carries after merging; a request
// needing more gets the whole object.
const maxRanges = 16

// rangeMergeGap merges ranges less than this far apart: a multipart part
// header costs about this much, so sending the gap is cheaper.
const rangeMergeGap = 80

var (
	// errRangeSyntax: not a valid bytes range set; the Range is ignored.
	errRangeSyntax = errors.New("invalid Range")
	// errUnsatisfiable: a valid range set none of whose ranges overlaps the
	// representation (416).
	errUnsatisfiable = errors.New("range not satisfiable")
)

// parseRange parses a Range value against a representation of size bytes
// into its satisfiable ranges, each clipped to the representation, in the
// order given. It returns errRangeSyntax for anything that is not a bytes
// range set (such a header is ignored, RFC 9110 §14.2) and
// errUnsatisfiable when none is satisfiable. Numbers of any length are
// accepted: a last-pos or suffix-length beyond the representation is
// clipped, a first-pos beyond it is unsatisfiable.
func parseRange(v string, size int64) ([]byteRange, error) {
	unit, set, ok := strings.Cut(v, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return nil, errRangeSyntax
	}
	var out []byteRange
	specs := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue // empty list elements are allowed (RFC 9110 §5.6.1)
		}
		specs++
		if specs > 10000 {
			return nil, errRangeSyntax // no honest client sends this many
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return nil, errRangeSyntax
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		if first == "" {
			// suffix-range: the last n bytes.
			n, ok := parseDigits(last)
			if !ok {
				return nil, errRangeSyntax
			}
			if n > 0 && size > 0 {
				out = append(out, byteRange{size - min(n, size), size - 1})
			}
			continue
		}
		f, ok := parseDigits(first)
		if !ok {
			return nil, errRangeSyntax
		}
		l := int64(-1) // open-ended
		if last != "" {
			if l, ok = parseDigits(last); !ok || l < f {
				return nil, errRangeSyntax
			}
		}
		if f >= size {
			continue // valid, not satisfiable
		}
		if l < 0 || l >= size {
			l = size - 1
		}
		out = append(out, byteRange{f, l})
	}
	if specs == 0 {
		return nil, errRangeSyntax
	}
	if len(out) == 0 {
		return nil, errUnsatisfiable
	}
	return out, nil
}

// parseDigits reads a non-empty run of decimal digits, saturating at the
// largest int64 instead of overflowing.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1-9)/10 {
			n = 1<<63 - 1
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// mergeRanges sorts rs and merges ranges that overlap or lie less than
// rangeMergeGap apart.
func mergeRanges(rs []byteRange) []byteRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b byteRange) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		cur := &out[len(out)-1]
		if r.first <= cur.last+rangeMergeGap {
			cur.last = max(cur.last, r.last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// normalizeRange rewrites r's Range for a representation of size bytes
// into what ServeContent should act on: removed (serve the whole object)
// when it is not a valid bytes range set or when, merged, it covers the
// whole object or needs more than maxRanges parts; a canonical
// unsatisfiable range (416 with "Content-Range: bytes */size") when no
// range is satisfiable; else the merged ranges in canonical form. It
// reports the decision for logs and tests.
func normalizeRange(h http.Header, size int64) string {
	v := h.Get("Range")
	if v == "" {
		return "none"
	}
	if len(h.Values("Range")) > 1 {
		h.Del("Range")
		return "ignored: more than one Range field"
	}
	rs, err := parseRange(v, size)
	switch {
	case errors.Is(err, errUnsatisfiable):
		h.Set("Range", "bytes="+strconv.FormatInt(size, 10)+"-")
		return "unsatisfiable"
	case err != nil:
		h.Del("Range")
		return "ignored: " + err.Error()
	}
	merged := mergeRanges(rs)
	if len(merged) > maxRanges || (len(merged) == 1 && merged[0].first == 0 && merged[0].last == size-1) {
		h.Del("Range")
		return "whole"
	}
	var b strings.Builder
	b.WriteString("bytes=")
	for i, r := range merged {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(r.first, 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatInt(r.last, 10))
	}
	h.Set("Range", b.String())
	if len(merged) < len(rs) {
		return "merged"
	}
	return "ranges"
}
