package origin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestOrigin(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "a.txt"), []byte("hello, edgeswarm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "secret"), []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Dir: dir, CacheControl: "public, max-age=5"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestOriginServesValidatorsAndRanges(t *testing.T) {
	s, ts := newTestOrigin(t)
	resp, body := get(t, ts.URL+"/sub/a.txt", nil)
	if resp.StatusCode != 200 || body != "hello, edgeswarm" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Cache-Control") != "public, max-age=5" {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, body = get(t, ts.URL+"/sub/a.txt", map[string]string{"Range": "bytes=7-"})
	if resp.StatusCode != 206 || body != "edgeswarm" || resp.Header.Get("Content-Range") != "bytes 7-15/16" {
		t.Fatalf("range: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = get(t, ts.URL+"/sub/a.txt", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 304 {
		t.Fatalf("conditional: %d", resp.StatusCode)
	}
	resp, _ = get(t, ts.URL+"/sub/a.txt", map[string]string{"Range": "bytes=100-"})
	if resp.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}
	if st := s.Stats(); st.Fetches != 2 || st.Requests != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOriginRefusesTraversal(t *testing.T) {
	_, ts := newTestOrigin(t)
	for _, p := range []string{"/../secret", "/%2e%2e/secret", "/sub/..%2f..%2fsecret", "/sub/%00a.txt", "/sub/..\\..\\secret", "/nope"} {
		resp, body := get(t, ts.URL+p, nil)
		if resp.StatusCode == 200 || strings.Contains(body, "nope") && resp.StatusCode < 400 {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
}
