package edge

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Two properties on one edge: each host reaches its own origin, the same
// path on both is two objects, an unknown host is refused, and per-property
// overrides (force_ttl, ignore_query) apply.
func TestPropertiesRouteByHost(t *testing.T) {
	clk := newClock()
	a, aFetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		fmt.Fprintf(w, "A %s", r.URL.RequestURI())
	})
	b, _ := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		fmt.Fprintf(w, "B %s", r.URL.RequestURI())
	})
	e := newEdge(t, a, clk, func(c *Config) {
		c.Origin = ""
		c.Properties = []Property{
			{Name: "a", Hosts: []string{"a.example", "*.a.example"}, Origin: a.srv.URL, IgnoreQuery: true},
			{Name: "b", Hosts: []string{"B.example"}, Origin: b.srv.URL, ForceTTL: time.Hour},
		}
	})
	get := func(host, path string) result {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		req.Host = host
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return result{status: resp.StatusCode, header: resp.Header, body: buf.Bytes()}
	}
	if r := get("a.example", "/x?utm=1"); string(r.body) != "A /x" {
		t.Errorf("a.example: %q (ignore_query drops the query)", r.body)
	}
	if r := get("img.a.example:8080", "/x?utm=2"); string(r.body) != "A /x" || r.header.Get("X-Cache") != "HIT" {
		t.Errorf("img.a.example: %q %q, want a's stored copy", r.header.Get("X-Cache"), r.body)
	}
	if r := get("b.example", "/x"); string(r.body) != "B /x" {
		t.Errorf("b.example: %q", r.body)
	}
	clk.Advance(30 * time.Minute)
	if r := get("b.example", "/x"); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("b with force_ttl 1h after 30 min: X-Cache %q, want HIT despite no-cache", r.header.Get("X-Cache"))
	}
	if r := get("c.example", "/x"); r.status != http.StatusMisdirectedRequest {
		t.Errorf("unknown host: status %d, want 421", r.status)
	}
	if aFetches.Load() != 1 {
		t.Errorf("origin a fetched %d times, want 1", aFetches.Load())
	}
}

func TestParseConfigFile(t *testing.T) {
	good := `
listen: 127.0.0.1:8080
cache_dir: /tmp/c
cache_size: 2GiB
default_ttl: 90s
properties:
  - name: videos
    hosts: [videos.example.com, "*.videos.example.com"]
    origin: http://10.0.0.5:9000
    force_ttl: 1h
  - name: web
    hosts: ["*"]
    origin: https://origin.example.com/base
    stale_if_error: 10m
ticket_ttl: 20m
swarm:
  peer_ttl: 10s
  max_revoked: 500
  revocation_ttl: 72h
`
	f, err := ParseConfigFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Config()
	if c.CacheSize != 2<<30 || c.DefaultTTL != 90*time.Second || len(c.Properties) != 2 || c.Properties[0].ForceTTL != time.Hour || f.Listen != "127.0.0.1:8080" ||
		c.TicketTTL != 20*time.Minute || c.Swarm.MaxRevoked != 500 || c.Swarm.RevocationTTL != 72*time.Hour {
		t.Errorf("parsed: %+v", c)
	}
	if c.HotCacheSize != 0 || c.DisableFastLane {
		t.Errorf("defaults: hot cache %d, fast lane disabled %v", c.HotCacheSize, c.DisableFastLane)
	}
	for yml, want := range map[string]int64{"hot_cache_size: 0\n": -1, "hot_cache_size: 128MiB\nno_fast_lane: true\n": 128 << 20} {
		f, err := ParseConfigFile([]byte("cache_dir: /c\norigin: http://o\n" + yml))
		if err != nil {
			t.Fatal(err)
		}
		if c := f.Config(); c.HotCacheSize != want || c.DisableFastLane != strings.Contains(yml, "no_fast_lane") {
			t.Errorf("%q: hot cache %d, fast lane disabled %v", yml, c.HotCacheSize, c.DisableFastLane)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		{"cache_dir: /c\norigin: http://o\nbogus: 1\n", "line 3"},
		{"cache_dir: /c\norigin: ftp://o\n", "line 2: origin"},
		{"cache_dir: /c\ncache_size: lots\norigin: http://o\n", "line 2"},
		{"cache_dir: /c\ndefault_ttl: soon\norigin: http://o\n", "line 2"},
		{"cache_dir: /c\ndefault_ttl: -5s\norigin: http://o\n", "line 2"},
		{"origin: http://o\n", "cache_dir is required"},
		{"cache_dir: /c\n", "give origin"},
		{"cache_dir: /c\ncross_pid: deny\nproperties:\n  - hosts: [a]\n    origin: http://a\n", "line 2: cross_pid"},
		{"cache_dir: /c\nproperties:\n  - hosts: [a]\n    origin: http://a\n    cross_pid: never\n", "cross_pid \"never\""},
		{"cache_dir: /c\norigin: http://o\nproperties:\n  - hosts: [a]\n    origin: http://a\n", "line 2: give origin or properties"},
		{"cache_dir: /c\nproperties:\n  - name: a\n    hosts: [x.example]\n    origin: http://a\n  - name: a\n    hosts: [y.example]\n    origin: http://b\n", "line 6: property name \"a\" already used on line 3"},
		{"cache_dir: /c\nproperties:\n  - name: a\n    hosts:\n      - x.example\n      - x.example\n    origin: http://a\n", "line 6: host \"x.example\" already given on line 5"},
		{"cache_dir: /c\nproperties:\n  - name: a\n    hosts: [\"bad host\"]\n    origin: http://a\n", "line 4: host"},
		{"cache_dir: /c\nproperties:\n  - name: a/b\n    hosts: [x]\n    origin: http://a\n", "line 3: property name"},
		{"cache_dir: /c\nchunk_size: 1000\norigin: http://o\n", "line 2: chunk_size"},
		{"cache_dir: /c\nticket_ttl: 48h\norigin: http://o\n", "line 2: ticket_ttl"},
		{"- a\n- b\n", "line 1: want a mapping"},
		{"cache_dir: [\n", "config: yaml"},
	} {
		_, err := ParseConfigFile([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfigFile(%q) = %v, want an error with %q", tc.yaml, err, tc.want)
		}
	}
}

// FuzzConfigFile: any input is refused with an error or accepted as a
// configuration New accepts; never a panic.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("cache_dir: /c\norigin: http://o\n"))
	f.Add([]byte("cache_dir: /c\nproperties:\n  - name: a\n    hosts: [\"*.a\", b]\n    origin: http://a\n    force_ttl: 1h\n"))
	f.Add([]byte("cache_size: 1GiB\nswarm: {peer_ttl: 5s}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := ParseConfigFile(data)
		if err != nil {
			return
		}
		c := fc.Config()
		c.SigningKey = testKey
		if _, err := buildProperties(c.applyDefaults()); err != nil {
			t.Fatalf("accepted a file whose properties do not build: %v", err)
		}
	})
}
