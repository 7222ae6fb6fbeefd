package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func adminDo(t *testing.T, base, token, method, path, body string, hdr ...string) (int, PurgeResponse) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pr PurgeResponse
	json.NewDecoder(resp.Body).Decode(&pr)
	return resp.StatusCode, pr
}

// Battery 12: purge by a surrogate key tagging 1000 objects → all of them
// miss afterwards while other keys still hit; a soft purge serves the stale
// copy while one request revalidates it.
func TestBatteryPurgeBySurrogateKey(t *testing.T) {
	clk := newClock()
	var conditional atomic.Int64
	o, _ := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		var i int
		fmt.Sscanf(r.URL.Path, "/o/%d", &i)
		tag := "big"
		if i >= 1000 {
			tag = "other"
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Surrogate-Key", tag+" obj-"+fmt.Sprint(i))
		w.Header().Set("ETag", `"e"`)
		if r.Header.Get("If-None-Match") == `"e"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "object %d", i)
	})
	e := newEdge(t, o, clk, func(c *Config) { c.AdminToken = "s3cret" })
	admin := httptest.NewServer(e.AdminHandler())
	t.Cleanup(admin.Close)
	for i := range 1100 {
		if r := e.get(t, fmt.Sprintf("/o/%d", i)); r.status != http.StatusOK || r.header.Get("Surrogate-Key") != "" {
			t.Fatalf("/o/%d: status %d, Surrogate-Key sent to the client: %q", i, r.status, r.header.Get("Surrogate-Key"))
		}
	}
	if code, _ := adminDo(t, admin.URL, "wrong", http.MethodPost, "/purge/key/big", ""); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", code)
	}
	code, pr := adminDo(t, admin.URL, "s3cret", http.MethodPost, "/purge/key/big", "")
	if code != http.StatusOK || pr.Purged != 1000 {
		t.Fatalf("purge by key: %d, %+v; want 200 and 1000 purged", code, pr)
	}
	misses, hits := 0, 0
	for i := range 1100 {
		r := e.get(t, fmt.Sprintf("/o/%d", i))
		switch {
		case i < 1000 && r.header.Get("X-Cache") == "MISS":
			misses++
		case i >= 1000 && r.header.Get("X-Cache") == "HIT":
			hits++
		}
	}
	if misses != 1000 || hits != 100 {
		t.Fatalf("after the purge: %d of 1000 tagged objects missed, %d of 100 others hit", misses, hits)
	}

	// Soft purge: stale at once, one revalidation, then fresh.
	code, pr = adminDo(t, admin.URL, "s3cret", http.MethodPost, "/purge/key/other", "", "Fastly-Soft-Purge", "1")
	if code != http.StatusOK || pr.Purged != 100 || !pr.Soft {
		t.Fatalf("soft purge: %d %+v", code, pr)
	}
	r := e.get(t, "/o/1000")
	if r.header.Get("X-Cache") != "STALE" || string(r.body) != "object 1000" {
		t.Fatalf("after soft purge: X-Cache %q body %q; want the stale copy", r.header.Get("X-Cache"), r.body)
	}
	waitFor(t, "the revalidation", func() bool { return e.get(t, "/o/1000").header.Get("X-Cache") == "HIT" })
	if got := conditional.Load(); got != 1 {
		t.Errorf("revalidations after soft purge = %d, want 1", got)
	}
	// A hard purge by the same key still finds the soft-purged objects.
	if _, pr := adminDo(t, admin.URL, "s3cret", http.MethodPost, "/purge/key/other", ""); pr.Purged != 100 {
		t.Errorf("hard purge after soft: %+v, want 100", pr)
	}
}

func TestPurgeByURLPrefixAndAll(t *testing.T) {
	clk := newClock()
	o, _ := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprint(w, r.URL.Path)
	})
	e := newEdge(t, o, clk, func(c *Config) { c.AdminToken = "t" })
	admin := httptest.NewServer(e.AdminHandler())
	t.Cleanup(admin.Close)
	for _, p := range []string{"/v/a", "/v/b", "/w/c", "/x?q=1"} {
		e.get(t, p)
	}
	if _, pr := adminDo(t, admin.URL, "t", "PURGE", "/x?q=1", ""); pr.Purged != 1 {
		t.Errorf("PURGE /x?q=1: %+v", pr)
	}
	if _, pr := adminDo(t, admin.URL, "t", http.MethodPost, "/purge", `{"prefixes": ["/v/"]}`); pr.Purged != 2 {
		t.Errorf("prefix /v/: %+v", pr)
	}
	if r := e.get(t, "/w/c"); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("/w/c after other purges: %q", r.header.Get("X-Cache"))
	}
	if _, pr := adminDo(t, admin.URL, "t", http.MethodPost, "/purge", `{"files": ["http://any.example/w/c"]}`); pr.Purged != 1 {
		t.Errorf("files: %+v", pr)
	}
	e.get(t, "/v/a")
	if _, pr := adminDo(t, admin.URL, "t", http.MethodPost, "/purge_all", ""); pr.Purged != 1 {
		t.Errorf("purge_all: %+v", pr)
	}
	for _, bad := range []string{`{"bogus": 1}`, `not json`, `{"prefixes": ["relative"]}`} {
		if code, _ := adminDo(t, admin.URL, "t", http.MethodPost, "/purge", bad); code != http.StatusBadRequest {
			t.Errorf("body %s: status %d, want 400", bad, code)
		}
	}
	// No token configured: every admin request is refused.
	e2 := newEdge(t, o, clk, nil)
	a2 := httptest.NewServer(e2.AdminHandler())
	t.Cleanup(a2.Close)
	if code, _ := adminDo(t, a2.URL, "", http.MethodPost, "/purge_all", ""); code != http.StatusUnauthorized {
		t.Errorf("no admin token configured: %d, want 401", code)
	}

}
