package edge

import (
	"bytes"
	"fmt"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	const size = 500
	for _, tc := range []struct {
		v    string
		want []byteRange
		err  error
	}{
		{"bytes=0-99", []byteRange{{0, 99}}, nil},
		{"bytes=-0", nil, errUnsatisfiable},
		{"bytes=500-", nil, errUnsatisfiable},
		{"bytes=499-", []byteRange{{499, 499}}, nil},
		{"bytes=0-18446744073709551615", []byteRange{{0, 499}}, nil},
		{"bytes=0-99999999999999999999999999", []byteRange{{0, 499}}, nil},
		{"bytes=99999999999999999999999999-", nil, errUnsatisfiable},
		{"bytes=-99999999999999999999999999", []byteRange{{0, 499}}, nil},
		{"bytes=-10", []byteRange{{490, 499}}, nil},
		{"BYTES = 1-2 , , 4-5", []byteRange{{1, 2}, {4, 5}}, nil},
		{"bytes=5-1", nil, errRangeSyntax},
		{"bytes=a-b", nil, errRangeSyntax},
		{"bytes=1", nil, errRangeSyntax},
		{"bytes=", nil, errRangeSyntax},
		{"items=0-1", nil, errRangeSyntax},
		{"bytes=-", nil, errRangeSyntax},
		{"bytes=+1-2", nil, errRangeSyntax},
		{"bytes=0x10-20", nil, errRangeSyntax},
	} {
		got, err := parseRange(tc.v, size)
		if err != tc.err || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("parseRange(%q) = %v, %v; want %v, %v", tc.v, got, err, tc.want, tc.err)
		}
	}
}

func TestNormalizeRange(t *testing.T) {
	const size = 1000
	for _, tc := range []struct{ in, out, decision string }{
		{"", "", "none"},
		{"bytes=0-", "", "whole"},
		{"bytes=-1000", "", "whole"},
		{"bytes=10-20", "bytes=10-20", "ranges"},
		{"bytes=10-20,15-30,0-5", "bytes=0-30", "merged"},
		{"bytes=900-999,0-9", "bytes=0-9,900-999", "ranges"},
		{"bytes=1000-", "bytes=1000-", "unsatisfiable"},
		{"bytes=x", "", "ignored: invalid Range"},
		{"bytes=" + strings.Repeat("0-,", 1000), "", "whole"},
	} {
		h := http.Header{}
		if tc.in != "" {
			h.Set("Range", tc.in)
		}
		if d := normalizeRange(h, size); d != tc.decision || h.Get("Range") != tc.out {
			t.Errorf("normalizeRange(%q) = %q, Range %q; want %q, %q", tc.in, d, h.Get("Range"), tc.decision, tc.out)
		}
	}
	// Many small ranges past maxRanges: the whole object instead.
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range 40 {
		fmt.Fprintf(&b, "%d-%d,", i*200, i*200)
	}
	h := http.Header{"Range": {b.String()}}
	if d := normalizeRange(h, 10000); d != "whole" || h.Get("Range") != "" {
		t.Errorf("40 ranges: %q, Range %q", d, h.Get("Range"))
	}
}

// Battery 25 and 26 against a stored object, end to end.
func TestBatteryRanges(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(25, 500)
	o.set("/r.bin", &object{body: body, header: map[string]string{"Cache-Control": "max-age=600", "ETag": `"r1"`,
		"Last-Modified": clk.Now().Add(-time.Hour).Format(http.TimeFormat)}})
	e := newEdge(t, o, clk, nil)
	e.get(t, "/r.bin")

	abusive := "bytes=" + strings.TrimSuffix(strings.Repeat("0-,", 1000), ",")
	r := e.get(t, "/r.bin", "Range", abusive)
	if (r.status != http.StatusOK && r.status != http.StatusRequestedRangeNotSatisfiable) || len(r.body) > len(body) {
		t.Fatalf("1000 × 0-: status %d, %d bytes; want 200 or 416 and at most %d bytes", r.status, len(r.body), len(body))
	}
	for _, tc := range []struct {
		rng    string
		status int
		want   []byte
		cr     string
	}{
		{"bytes=-0", http.StatusRequestedRangeNotSatisfiable, nil, "bytes */500"},
		{"bytes=500-", http.StatusRequestedRangeNotSatisfiable, nil, "bytes */500"},
		{"bytes=0-18446744073709551615", http.StatusOK, body, ""},
		{"bytes=1-18446744073709551616", http.StatusPartialContent, body[1:], "bytes 1-499/500"},
		{"bytes=-99999999999999999999999", http.StatusOK, body, ""},
		{"bytes=10-19", http.StatusPartialContent, body[10:20], "bytes 10-19/500"},
		{"bytes=12-19,10-15", http.StatusPartialContent, body[10:20], "bytes 10-19/500"},
		{"bytes=oops", http.StatusOK, body, ""},
	} {
		r := e.get(t, "/r.bin", "Range", tc.rng)
		if r.status != tc.status || (tc.want != nil && !bytes.Equal(r.body, tc.want)) || r.header.Get("Content-Range") != tc.cr {
			t.Errorf("Range %q: status %d, %d bytes, Content-Range %q; want %d, %d bytes, %q",
				tc.rng, r.status, len(r.body), r.header.Get("Content-Range"), tc.status, len(tc.want), tc.cr)
		}
	}
	// Two distant ranges: multipart/byteranges with both parts.
	r = e.get(t, "/r.bin", "Range", "bytes=0-9,400-409")
	mt, params, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	if r.status != http.StatusPartialContent || mt != "multipart/byteranges" {
		t.Fatalf("two ranges: status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		var buf bytes.Buffer
		buf.ReadFrom(p)
		parts = append(parts, buf.Bytes())
	}
	if len(parts) != 2 || !bytes.Equal(parts[0], body[0:10]) || !bytes.Equal(parts[1], body[400:410]) {
		t.Errorf("multipart parts: %d", len(parts))
	}
	// If-Range: a matching validator gets the range, another the whole.
	if r := e.get(t, "/r.bin", "Range", "bytes=0-9", "If-Range", `"r1"`); r.status != http.StatusPartialContent {
		t.Errorf("If-Range matching: status %d", r.status)
	}
	if r := e.get(t, "/r.bin", "Range", "bytes=0-9", "If-Range", `"other"`); r.status != http.StatusOK || len(r.body) != len(body) {
		t.Errorf("If-Range not matching: status %d, %d bytes", r.status, len(r.body))
	}
}

// FuzzRange: any Range value against any size parses without panicking,
// into ranges inside the representation, and normalizes to a header that
// parses back to the same or fewer bytes.
func FuzzRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-0", "bytes=500-", "bytes=0-18446744073709551615",
		"bytes=0-,0-,0-", "bytes=1-2,3-4,-5", "bytes=99999999999999999999-", "bytes= , ,1-", "Bytes=5-1"} {
		f.Add(s, int64(500))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		rs, err := parseRange(v, size)
		var total int64
		for _, r := range rs {
			if r.first < 0 || r.last < r.first || r.last >= size {
				t.Fatalf("parseRange(%q, %d): range %v outside the representation", v, size, r)
			}
			total += r.last - r.first + 1
		}
		if err == nil && len(rs) == 0 {
			t.Fatalf("parseRange(%q, %d): no ranges and no error", v, size)
		}
		h := http.Header{"Range": {v}}
		normalizeRange(h, size)
		if n := h.Get("Range"); n != "" {
			rs2, err2 := parseRange(n, size)
			if err2 != nil && err2 != errUnsatisfiable {
				t.Fatalf("normalized %q → %q does not parse: %v", v, n, err2)
			}
			if len(rs2) > maxRanges {
				t.Fatalf("normalized %q has %d ranges", n, len(rs2))
			}
		}
	})
}
