package edge

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkHit measures cache hits through the real handler over loopback
// TCP; the client reads each body to the end. Modes:
//
//   - sendfile: the normal path. The version was verified once, so
//     net/http sends it with sendfile(2).
//
//   - copy: the same, with the connection's io.ReaderFrom hidden as the
//     access-log recorder hid it before it forwarded ReadFrom: every byte
//     is copied through a 32 KiB user-space buffer (the "before").
//
//   - verify: every block of every read checked in user space (the path
//     before a version is verified, and after a restart).
//
//     go test ./internal/edge -run '^$' -bench BenchmarkHit -benchtime 2s -count 5
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 20} {
		for _, mode := range []string{"copy", "sendfile", "verify"} {
			b.Run(fmt.Sprintf("%dMiB/%s", size>>20, mode), func(b *testing.B) {
				clk := newClock()
				o := newOrigin(b, clk)
				o.set("/obj", &object{body: randomBody(uint64(size), size), header: map[string]string{"Cache-Control": "max-age=86400"}})
				s, err := New(Config{Origin: o.srv.URL, CacheDir: b.TempDir(), SigningKey: testKey},
					Deps{Now: clk.Now, Rand: rand.New(rand.NewPCG(3, 4))})
				if err != nil {
					b.Fatal(err)
				}
				h := s.Handler()
				if mode == "copy" {
					inner := h
					h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						inner.ServeHTTP(struct{ http.ResponseWriter }{w}, r) // hides ReadFrom
					})
				}
				hs := httptest.NewServer(h)
				b.Cleanup(func() {
					hs.Close()
					s.Close()
				})
				s.cache.verifyEveryRead.Store(mode == "verify")
				e := &testEdge{Server: s, url: hs.URL, hc: hs.Client()}
				for range 2 { // fill, then verify once
					if r := e.get(b, "/obj"); r.status != http.StatusOK || len(r.body) != size {
						b.Fatalf("warm-up: status %d, %d bytes", r.status, len(r.body))
					}
				}
				b.SetBytes(int64(size))
				cpu := processCPU()
				for b.Loop() {
					resp, err := e.hc.Get(e.url + "/obj")
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || n != int64(size) || resp.Header.Get("X-Cache") != statusHit {
						b.Fatalf("hit: %d bytes, err %v, X-Cache %q", n, err, resp.Header.Get("X-Cache"))
					}
				}
				b.ReportMetric(float64(processCPU()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
			})
		}
	}
}
