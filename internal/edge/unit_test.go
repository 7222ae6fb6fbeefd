package edge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLifetime(t *testing.T) {
	date := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f := func(d time.Time) string { return d.Format(http.TimeFormat) }
	const def = 60 * time.Second
	tests := []struct {
		name string
		hdr  map[string]string
		want time.Duration
	}{
		{"s-maxage wins", map[string]string{"Cache-Control": "max-age=10, s-maxage=20"}, 20 * time.Second},
		{"max-age", map[string]string{"Cache-Control": "public, max-age=10", "Expires": f(date.Add(time.Hour))}, 10 * time.Second},
		{"quoted max-age", map[string]string{"Cache-Control": `max-age="15"`}, 15 * time.Second},
		{"bad max-age is stale", map[string]string{"Cache-Control": "max-age=soon"}, 0},
		{"no-cache", map[string]string{"Cache-Control": "no-cache, max-age=100"}, 0},
		{"expires minus date", map[string]string{"Date": f(date), "Expires": f(date.Add(90 * time.Second))}, 90 * time.Second},
		{"expires in the past", map[string]string{"Date": f(date), "Expires": f(date.Add(-time.Hour))}, 0},
		{"invalid expires", map[string]string{"Date": f(date), "Expires": "0"}, 0},
		{"heuristic", map[string]string{"Date": f(date), "Last-Modified": f(date.Add(-10 * time.Hour))}, time.Hour},
		{"heuristic capped", map[string]string{"Date": f(date), "Last-Modified": f(date.Add(-1000 * time.Hour))}, 24 * time.Hour},
		{"default", map[string]string{"Date": f(date)}, def},
		{"no headers", map[string]string{}, def},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lifetime(meta{Header: tc.hdr, Stored: date}, def); got != tc.want {
				t.Fatalf("lifetime = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStorable(t *testing.T) {
	for cc, want := range map[string]bool{
		"":                            true,
		"public, max-age=60":          true,
		"no-cache":                    true, // stored, revalidated on every use
		"no-store":                    false,
		"private":                     false,
		`private="Set-Cookie"`:        false,
		"max-age=60, No-Store":        false,
		"s-maxage=1, must-revalidate": true,
	} {
		h := http.Header{}
		if cc != "" {
			h.Set("Cache-Control", cc)
		}
		if got := storable(h); got != want {
			t.Errorf("storable(%q) = %v, want %v", cc, got, want)
		}
	}
	if storable(http.Header{"Vary": {"*"}}) {
		t.Error("Vary: * stored")
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	m := meta{Stored: now.Add(-30 * time.Second), InitialAge: 5}
	if got := age(m, now); got != 35*time.Second {
		t.Fatalf("age = %v, want 35s", got)
	}
}

func TestConfigValidation(t *testing.T) {
	good := Config{Origin: "http://127.0.0.1:1", CacheDir: t.TempDir(), SigningKey: testKey}
	for name, mod := range map[string]func(*Config){
		"no origin":     func(c *Config) { c.Origin = "" },
		"origin scheme": func(c *Config) { c.Origin = "ftp://x" },
		"no cache dir":  func(c *Config) { c.CacheDir = "" },
		"no key":        func(c *Config) { c.SigningKey = nil },
		"chunk size":    func(c *Config) { c.ChunkSize = 1000 },
		"negative size": func(c *Config) { c.CacheSize = -1 },
	} {
		c := good
		mod(&c)
		if s, err := New(c, Deps{}); err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFlightGroup(t *testing.T) {
	var g group[int]
	var wg sync.WaitGroup
	spawn := func(f func()) error { wg.Add(1); go func() { defer wg.Done(); f() }(); return nil }
	release := make(chan struct{})
	var runs atomic.Int32
	fn := func() (int, error) { runs.Add(1); <-release; return 42, nil }
	c1, lead1 := g.do("k", spawn, fn)
	c2, lead2 := g.do("k", spawn, fn)
	if c1 != c2 || !lead1 || lead2 {
		t.Fatalf("same key: same call %v, leaders %v %v; want one call, the first caller leading", c1 == c2, lead1, lead2)
	}
	// A waiter's timeout ends its wait, not the call.
	if _, err := c1.wait(context.Background(), 10*time.Millisecond); !errors.Is(err, errLockTimeout) {
		t.Fatalf("timed-out wait: %v", err)
	}
	// A waiter whose context ends stops waiting; the call goes on.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c1.wait(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	close(release)
	if v, err := c2.wait(context.Background(), 0); v != 42 || err != nil {
		t.Fatalf("wait = %d, %v", v, err)
	}
	wg.Wait()
	if runs.Load() != 1 {
		t.Fatalf("fn ran %d times", runs.Load())
	}
	refused := errors.New("closed")
	c3, _ := g.do("k", func(func()) error { return refused }, fn)
	if _, err := c3.wait(context.Background(), 0); !errors.Is(err, refused) {
		t.Fatalf("refused spawn: %v", err)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A RoundTripper that ends a body cleanly before its Content-Length (a
// custom transport, a buggy middlebox) must not get a short object stored.
func TestShortBodyFromTransportNotStored(t *testing.T) {
	var calls atomic.Int32
	rt := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		if r.Header.Get("Accept-Encoding") != "identity" {
			t.Errorf("origin request Accept-Encoding %q, want identity", r.Header.Get("Accept-Encoding"))
		}
		return &http.Response{
			StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Cache-Control": {"max-age=60"}},
			ContentLength: 100,
			Body:          io.NopCloser(strings.NewReader("only 12 byte")),
			Request:       r,
		}, nil
	})
	dir := t.TempDir()
	s, err := New(Config{Origin: "http://origin.invalid", CacheDir: dir, SigningKey: testKey}, Deps{OriginTransport: rt})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2 {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/short", nil))
		if rec.Code != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", rec.Code)
		}
	}
	if st := s.Stats(); st.CachedObjects != 0 || calls.Load() != 2 {
		t.Fatalf("short body: %d objects stored, %d origin calls; want 0, 2", st.CachedObjects, calls.Load())
	}
	assertNoDataFiles(t, dir)
}
