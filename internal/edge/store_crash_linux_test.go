package edge

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// helperEnv names the environment variable that makes the test binary an
// edge process (TestHelperEdgeProcess).
const helperEnv = "EDGESWARM_TEST_EDGE_PROCESS"

// TestHelperEdgeProcess is not a test: run by TestBattery09CrashDuringFills
// as a child process, it serves an edge until killed.
func TestHelperEdgeProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("runs only as a child process of TestBattery09CrashDuringFills")
	}
	s, err := New(Config{Origin: os.Getenv("EDGE_ORIGIN"), CacheDir: os.Getenv("EDGE_DIR"), SigningKey: testKey}, Deps{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	fmt.Println("EDGE-ADDR", ln.Addr())
	// Modes of BenchmarkHitServerCPU.
	s.cache.verifyEveryRead.Store(os.Getenv("EDGE_MODE") == "verify")
	h := s.Handler()
	if os.Getenv("EDGE_MODE") == "copy" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.Handler().ServeHTTP(struct{ http.ResponseWriter }{w}, r) // hides ReadFrom
		})
	}
	(&http.Server{Handler: h}).Serve(ln) // until SIGKILL
	os.Exit(0)
}

// startEdgeProcess runs the test binary as an edge on dir and returns its
// base URL.
func startEdgeProcess(t testing.TB, origin, dir string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperEdgeProcess$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), helperEnv+"=1", "EDGE_ORIGIN="+origin, "EDGE_DIR="+dir), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "EDGE-ADDR "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("edge process exited before listening")
		}
		return cmd, "http://" + a
	case <-time.After(15 * time.Second):
		t.Fatal("edge process did not start")
	}
	return nil, ""
}

// Battery item 9: SIGKILL the edge during 200 concurrent fills and restart
// it on the same cache dir → partial or corrupt objects served = 0;
// complete objects still hit.
func TestBattery09CrashDuringFills(t *testing.T) {
	const n = 200 // even ids complete before the kill; odd ids stall half way
	bodies := make([][]byte, n)
	sums := make([][32]byte, n)
	for i := range bodies {
		bodies[i] = randomBody(uint64(1000+i), 20<<10+i*1500)
		sums[i] = sha256.Sum256(bodies[i])
	}
	gate := make(chan struct{}) // releases the stalled halves; closed after the kill
	var halfSent atomic.Int64
	var originReqs [n]atomic.Int64 // by object
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		if _, err := fmt.Sscanf(r.URL.Path, "/obj/%d", &i); err != nil || i < 0 || i >= n {
			http.NotFound(w, r)
			return
		}
		originReqs[i].Add(1)
		b := bodies[i]
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if i%2 == 0 {
			w.Write(b)
			return
		}
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		halfSent.Add(1)
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		w.Write(b[len(b)/2:])
	}))
	t.Cleanup(origin.Close)
	var closeGate sync.Once
	t.Cleanup(func() { closeGate.Do(func() { close(gate) }) })

	dir := t.TempDir()
	cmd, edge := startEdgeProcess(t, origin.URL, dir)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}, Timeout: 90 * time.Second}
	defer hc.CloseIdleConnections()

	type outcome struct {
		status int
		cache  string
		sum    [32]byte
		err    error
	}
	get := func(i int) outcome {
		resp, err := hc.Get(fmt.Sprintf("%s/obj/%d", edge, i))
		if err != nil {
			return outcome{err: err}
		}
		defer resp.Body.Close()
		h := sha256.New()
		_, err = io.Copy(h, resp.Body)
		var o outcome
		o.status, o.cache, o.err = resp.StatusCode, resp.Header.Get("X-Cache"), err
		copy(o.sum[:], h.Sum(nil))
		return o
	}

	first := make([]outcome, n)
	done := make([]chan struct{}, n)
	for i := range n {
		done[i] = make(chan struct{})
		go func() {
			defer close(done[i])
			first[i] = get(i)
		}()
	}
	for i := 0; i < n; i += 2 {
		select {
		case <-done[i]:
		case <-time.After(60 * time.Second):
			t.Fatalf("fill %d did not complete", i)
		}
	}
	// Kill only once every stalled fill is writing its temp file.
	tmpBytes := func() (files int, bytes int64) {
		es, _ := os.ReadDir(filepath.Join(dir, "tmp"))
		for _, e := range es {
			if fi, err := e.Info(); err == nil && fi.Size() > 0 {
				files++
				bytes += fi.Size()
			}
		}
		return files, bytes
	}
	// A deadline generous enough for a loaded machine running the race
	// detector; unloaded, this takes well under a second. (On a machine so
	// slow that fills outlast Config.LockTimeout, waiters start new fills:
	// the origin then sees more than n/2 halves requested.)
	for deadline := time.Now().Add(25 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f, b := tmpBytes()
		if halfSent.Load() >= n/2 && f >= n/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stalled fills: origin sent %d of %d halves, %d temp files (%d bytes) written", halfSent.Load(), n/2, f, b)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	closeGate.Do(func() { close(gate) })
	for i := range n {
		<-done[i]
	}
	if f, b := tmpBytes(); f < n/2 {
		t.Fatalf("only %d partial temp files (%d bytes) left by the kill; the test did not crash mid-fill", f, b)
	}
	for i, o := range first {
		switch {
		case i%2 == 0 && (o.err != nil || o.status != http.StatusOK || o.sum != sums[i]):
			t.Fatalf("object %d, complete before the kill: status %d, err %v, sha256 match %v", i, o.status, o.err, o.sum == sums[i])
		case i%2 == 1 && o.err == nil && o.status == http.StatusOK && o.sum != sums[i]:
			t.Fatalf("object %d, stalled: a complete-looking response with the wrong body", i)
		}
	}

	// Restart on the same directory.
	var before [n]int64
	for i := range n {
		before[i] = originReqs[i].Load()
	}
	_, edge = startEdgeProcess(t, origin.URL, dir)
	if es, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(es) != 0 {
		t.Errorf("%d temp files survived the restart", len(es))
	}
	var wg sync.WaitGroup
	second := make([]outcome, n)
	for i := range n {
		wg.Go(func() { second[i] = get(i) })
	}
	wg.Wait()
	hits := 0
	for i, o := range second {
		if o.err != nil || o.status != http.StatusOK || o.sum != sums[i] {
			t.Fatalf("after restart, object %d: status %d, err %v, sha256 match %v", i, o.status, o.err, o.sum == sums[i])
		}
		if i%2 == 0 {
			if o.cache != statusHit {
				t.Errorf("after restart, object %d (complete before the kill): X-Cache %q, want HIT", i, o.cache)
			}
			hits++
		}
	}
	for i := range n {
		switch got := originReqs[i].Load() - before[i]; {
		case i%2 == 0 && got != 0:
			t.Errorf("after restart, object %d (complete before the kill) cost %d origin requests, want 0", i, got)
		case i%2 == 1 && got == 0:
			t.Errorf("after restart, object %d (stalled at the kill) was served without an origin request", i)
		}
	}
	t.Logf("%d complete objects hit after the SIGKILL, %d partial fills discarded and refetched", hits, n/2)
}
