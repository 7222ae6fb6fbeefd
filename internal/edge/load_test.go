package edge

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Battery 34: a hot object under load mixed with a Zipf-distributed tail
// of 2000 objects: the hot object's hit ratio is ≥ 99.9 %; the test
// reports the request rate it reached, p99 latency and the origin's
// request rate. Bounded in count (8,000 requests) and time (20 s).
func TestBatteryLoadHotObject(t *testing.T) {
	clk := newClock()
	body := randomBody(34, 4<<10)
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(body)
	})
	e := newEdge(t, o, clk, nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	const total, workers = 8000, 32
	zipf := rand.NewZipf(rand.New(rand.NewPCG(34, 34)), 1.1, 1, 1999)
	var zmu sync.Mutex
	var next, hotReq, hotHit, errs atomic.Int64
	lat := make([][]time.Duration, workers)
	deadline := time.Now().Add(20 * time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total && time.Now().Before(deadline) {
				path := "/hot"
				if next.Load()%2 == 0 {
					zmu.Lock()
					path = fmt.Sprintf("/z/%d", zipf.Uint64())
					zmu.Unlock()
				}
				t0 := time.Now()
				resp, err := hc.Get(e.url + path)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[w] = append(lat[w], time.Since(t0))
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
				if path == "/hot" {
					hotReq.Add(1)
					// Served without an origin request of its own: a hit,
					// or collapsed onto the one fill.
					if resp.Header.Get("X-Cache") == "HIT" || strings.Contains(resp.Header.Get("Cache-Status"), "collapsed") {
						hotHit.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	p99 := all[len(all)*99/100]
	ratio := float64(hotHit.Load()) / float64(hotReq.Load())
	t.Logf("%d requests in %v (%.0f req/s), p99 %v, hot object hit ratio %.5f, origin %d requests (%.1f req/s), %d errors",
		len(all), elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(), p99, ratio,
		fetches.Load(), float64(fetches.Load())/elapsed.Seconds(), errs.Load())
	if errs.Load() != 0 {
		t.Errorf("%d errors", errs.Load())
	}
	if ratio < 0.999 {
		t.Errorf("hot object hit ratio %.5f, want ≥ 0.999", ratio)
	}
	if fetches.Load() > 2001 {
		t.Errorf("origin requests %d for 2001 objects", fetches.Load())
	}
}
