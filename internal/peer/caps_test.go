package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// fakeClock is an injected clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// servingSeeder is an agent that holds all of o and serves it through
// Serve on a loopback listener.
type servingSeeder struct {
	a    *Agent
	d    *Download
	base string // http://host:port of its chunk server
}

func newServingSeeder(t *testing.T, e *fakeEdge, o *fakeObject, cfg Config, deps Deps) *servingSeeder {
	t.Helper()
	cfg.Edge, cfg.Keys = e.srv.URL, e.keys()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Advertise == "" {
		cfg.Advertise = ln.Addr().String()
	}
	if deps.Store == nil {
		deps.Store = seedStore(t, o)
	}
	deps.Logger = testLogger(t)
	a, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	t.Cleanup(func() {
		a.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	d, err := a.Download(context.Background(), o.m.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &servingSeeder{a: a, d: d, base: "http://" + ln.Addr().String()}
}

func (s *servingSeeder) get(t *testing.T, hc *http.Client, i int) (*http.Response, []byte) {
	t.Helper()
	resp, err := hc.Get(s.base + wire.ChunkPath(s.d.m.Root, i))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestUploadLimiterClock checks the upload bucket's arithmetic on an
// injected clock: a burst at once, then pieces spaced by the rate.
func TestUploadLimiterClock(t *testing.T) {
	clk := newFakeClock()
	u := newUploadLimiter(100<<10, clk.Now) // 100 KiB/s
	if d, _ := u.delay(uploadBurst); d != 0 {
		t.Fatalf("the first burst waited %v", d)
	}
	if d, _ := u.delay(10 << 10); d != 100*time.Millisecond {
		t.Fatalf("10 KiB past the burst: wait %v, want 100ms", d)
	}
	if d, _ := u.delay(10 << 10); d != 200*time.Millisecond {
		t.Fatalf("next 10 KiB: wait %v, want 200ms (queued behind the first)", d)
	}
	clk.Advance(time.Second) // the debt is paid and 80 KiB of credit is capped at the burst
	if d, _ := u.delay(uploadBurst); d != 0 {
		t.Fatalf("after a second: wait %v", d)
	}
	// A cancelled wait gives its tokens back.
	d, cancel := u.delay(uploadPiece)
	cancel()
	if d2, _ := u.delay(uploadPiece); d2 != d {
		t.Fatalf("after a cancel the next piece waits %v, want %v again", d2, d)
	}
	if newUploadLimiter(0, clk.Now) != nil {
		t.Fatal("a zero rate made a limiter")
	}
}

func TestRateMeter(t *testing.T) {
	clk := newFakeClock()
	var m rateMeter
	for s := 0; s < 10; s++ {
		m.add(clk.Now(), 1000)
		clk.Advance(time.Second)
	}
	if got := m.rate(clk.Now()); got != 1000 {
		t.Fatalf("steady 1000 B/s measured as %v", got)
	}
	clk.Advance(rateWindow * time.Second)
	if got := m.rate(clk.Now()); got != 0 {
		t.Fatalf("after %d quiet seconds: %v", rateWindow, got)
	}
}

// TestUploadRateCap serves a 4 MiB object to four concurrent downloaders
// through a 2 MiB/s upload cap: all bytes arrive, no faster than the cap
// allows (plus its burst), and — a generous liveness bound for a loaded
// machine — not slower than a third of it.
func TestUploadRateCap(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/capped.bin", testData(4<<20, 7), 64<<10)
	const limit = 2 << 20
	s := newServingSeeder(t, e, o, Config{UploadLimitBps: limit}, Deps{})
	hc := e.signedClient(t, &http.Transport{MaxIdleConnsPerHost: 8}, nil)
	defer hc.CloseIdleConnections()
	n := o.m.NumChunks()
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				data, err := wire.FetchChunk(context.Background(), hc, s.base, o.m.Root, i, o.m.ChunkLen(i), "tester", nil)
				if err == nil {
					err = o.m.CheckChunk(i, data)
				}
				if err != nil {
					errc <- fmt.Errorf("chunk %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	// The last handler may still be returning when its bytes arrived.
	waitFor(t, "every upload counted", func() bool { return s.a.Stats().UploadedChunks == int64(n) })
	st := s.a.Stats()
	if st.UploadedBytes != o.m.Size || st.UploadLimitBps != limit {
		t.Fatalf("stats %+v", st)
	}
	rate := float64(o.m.Size) / took.Seconds()
	minTook := time.Duration(float64(o.m.Size-uploadBurst) / (1.1 * limit) * float64(time.Second))
	t.Logf("4 MiB through a 2 MiB/s cap in %v: %.2f MiB/s", took.Round(time.Millisecond), rate/(1<<20))
	if took < minTook {
		t.Fatalf("4 MiB went in %v: faster than the cap allows (%v at 1.1×)", took, minTook)
	}
	if rate < limit/3 {
		t.Fatalf("rate %.0f B/s: under a third of the cap", rate)
	}
}

// TestInboundConnectionCap: past MaxConns open connections a new one is
// closed at once and counted; closing one frees a slot.
func TestInboundConnectionCap(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/c.bin", testData(100_000, 1), 16<<10)
	s := newServingSeeder(t, e, o, Config{MaxConns: 2}, Deps{})
	addr := strings.TrimPrefix(s.base, "http://")
	var open []net.Conn
	for k := 0; k < 2; k++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open = append(open, c)
	}
	waitFor(t, "two connections counted", func() bool { return s.a.Stats().InboundConns == 2 })
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	n, err := extra.Read(make([]byte, 100))
	var ne net.Error
	if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("third connection: read %d bytes, %v; want it closed at once", n, err)
	}
	if st := s.a.Stats(); st.ConnsRefused != 1 || st.InboundConns != 2 || st.MaxConns != 2 {
		t.Fatalf("stats after the refusal: %+v", st)
	}
	// The two open connections still work.
	fmt.Fprintf(open[0], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	open[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if buf := make([]byte, 12); readFull(open[0], buf) != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("an admitted connection got %q", buf)
	}
	open[1].Close()
	waitFor(t, "the closed connection's slot freed", func() bool { return s.a.Stats().InboundConns == 1 })
	hc := e.signedClient(t, nil, nil)
	if resp, _ := s.get(t, hc, 0); resp.StatusCode != 200 {
		t.Fatalf("after a slot freed: %d", resp.StatusCode)
	}
	hc.CloseIdleConnections()
}

func readFull(c net.Conn, buf []byte) error { _, err := io.ReadFull(c, buf); return err }

// TestConcurrentUploadCap: with MaxUploads 2 and uploads held slow by the
// upload cap, two uploads run and the others are refused with 503 at once.
func TestConcurrentUploadCap(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/u.bin", testData(1<<20, 2), 256<<10)
	s := newServingSeeder(t, e, o, Config{MaxUploads: 2, UploadLimitBps: 256 << 10}, Deps{})
	hc := e.signedClient(t, &http.Transport{MaxIdleConnsPerHost: 8}, nil)
	defer hc.CloseIdleConnections()
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for k := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := s.get(t, hc, k)
			codes[k] = resp.StatusCode
			if resp.StatusCode == 200 && o.m.CheckChunk(k, body) != nil {
				codes[k] = -1
			}
		}()
	}
	waitFor(t, "two uploads running", func() bool { return s.a.Stats().ActiveUploads == 2 })
	for k := 0; k < 3; k++ {
		resp, _ := s.get(t, hc, 2)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("third concurrent upload: %d", resp.StatusCode)
		}
	}
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Fatalf("the two admitted uploads: %v", codes)
	}
	// A handler may still be returning when its bytes arrived.
	waitFor(t, "uploads finished", func() bool { return s.a.Stats().ActiveUploads == 0 })
	if st := s.a.Stats(); st.Refused[RefusedSlots] != 3 || st.UploadsRefused != 3 || st.ActiveUploads != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMaxPeers: a hand-out of ten seeders gives a download at most MaxPeers
// peer sources.
func TestMaxPeers(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 8e6) // a slow edge, so peers matter
	o := e.addObject("/p.bin", testData(2<<20, 4), 64<<10)
	var extra []wire.PeerInfo
	for k := 0; k < 10; k++ {
		fp := newFakePeer(t, o, func(w http.ResponseWriter, chunk []byte) { w.Write(chunk) })
		extra = append(extra, fp.info(fmt.Sprintf("seeder%02d", k), o.m.NumChunks()))
	}
	e.mu.Lock()
	e.extra = extra
	e.mu.Unlock()
	sp := newSwarmPeer(t, e, peerOpts{name: "capped", cfg: func(c *Config) { c.MaxPeers = 3 }})
	d, err := sp.a.Download(context.Background(), "/p.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := d.Stats()
	peers := 0
	for _, src := range st.Sources {
		if src.Kind == KindPeer {
			peers++
		}
	}
	if peers == 0 || peers > 3 {
		t.Fatalf("%d peer sources, want 1 to 3", peers)
	}
	if st.Bytes[KindPeer] == 0 {
		t.Fatal("no bytes from peers: the cap was not exercised")
	}
	if got := sp.a.Stats().MaxPeers; got != 3 {
		t.Fatalf("reported max peers %d", got)
	}
}

// TestUploadOff: a leech-only agent registers with no address, announces
// nothing, serves no chunk (403) and still downloads.
func TestUploadOff(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/off.bin", testData(1<<20, 5), 64<<10)
	off := newServingSeeder(t, e, o, Config{Upload: UploadOff, Name: "leech"}, Deps{})
	resp, _ := off.get(t, e.signedClient(t, nil, nil), 0)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("chunk request to a leech-only peer: %d", resp.StatusCode)
	}
	// Another peer downloads: the edge never hands out the leech.
	sp := newSwarmPeer(t, e, peerOpts{name: "other"})
	d, err := sp.a.Download(context.Background(), "/off.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := off.a.Stats()
	if st.UploadedChunks != 0 || st.UploadedBytes != 0 || st.Offering || st.Refused[RefusedOff] != 1 || st.UploadMode != UploadOff {
		t.Fatalf("leech-only stats %+v", st)
	}
	if b := d.Stats().Bytes[KindPeer]; b != 0 {
		t.Fatalf("%d bytes came from peers; the only other peer is leech-only", b)
	}
	e.mu.Lock()
	tp := e.peers[off.a.PeerID()]
	addr, have := tp.addr, tp.have[o.m.Root.String()]
	e.mu.Unlock()
	if addr != "" {
		t.Fatalf("leech-only peer registered address %q", addr)
	}
	if bf, err := core.BitfieldFromBytes(o.m.NumChunks(), have); err != nil || bf.Count() != 0 {
		t.Fatalf("leech-only peer announced %d chunks (%v)", bf.Count(), err)
	}
	// Its own download is complete all the same.
	if !off.d.Stats().Complete {
		t.Fatal("leech-only download incomplete")
	}
	if _, err := New(Config{Edge: e.srv.URL, Upload: "sometimes"}, Deps{}); err == nil || !strings.Contains(err.Error(), "on, off or idle") {
		t.Fatalf("bad upload mode: %v", err)
	}
}

// announced returns how many chunks the edge last heard peer id hold.
func (e *fakeEdge) announced(id string, m *core.Manifest) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	tp := e.peers[id]
	if tp == nil {
		return -1
	}
	bf, err := core.BitfieldFromBytes(m.NumChunks(), tp.have[m.Root.String()])
	if err != nil {
		return -1
	}
	return bf.Count()
}

// TestUploadIdle drives idle-only uploading with an injected clock and CPU
// figure: chunk requests are refused (503, Retry-After) and nothing is
// announced while a player reads, while an own download runs, for
// IdleAfterMs after either, and while the CPU is busy; served otherwise.
func TestUploadIdle(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/idle.bin", testData(512<<10, 6), 64<<10)
	clk := newFakeClock()
	var cpuMu sync.Mutex
	busy, known := 0.1, true
	setCPU := func(b float64, ok bool) { cpuMu.Lock(); busy, known = b, ok; cpuMu.Unlock() }
	cpu := func() (float64, bool) { cpuMu.Lock(); defer cpuMu.Unlock(); return busy, known }
	s := newServingSeeder(t, e, o, Config{Upload: UploadIdle, IdleAfterMs: 30_000, IdleCPUPercent: 50},
		Deps{Now: clk.Now, CPUBusy: cpu})
	hc := e.signedClient(t, nil, clk.Now)
	defer hc.CloseIdleConnections()
	id, n := s.a.PeerID(), o.m.NumChunks()

	expect := func(step string, code int, reason string) {
		t.Helper()
		resp, body := s.get(t, hc, 1)
		if resp.StatusCode != code {
			t.Fatalf("%s: status %d (%s), want %d", step, resp.StatusCode, body, code)
		}
		st := s.a.Stats()
		if st.Idle == nil || st.Idle.Idle != (code == 200) || st.Offering != (code == 200) || !strings.Contains(st.Idle.Reason, reason) {
			t.Fatalf("%s: idle status %+v, want reason %q", step, st.Idle, reason)
		}
		if code == 503 {
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("%s: Retry-After %q", step, resp.Header.Get("Retry-After"))
			}
		}
		want := 0
		if code == 200 {
			want = n
		}
		waitFor(t, step+": announce follows", func() bool { return e.announced(id, o.m) == want })
	}

	// The seeding download just ended: that is activity.
	expect("just after the own download", 503, "local activity")
	clk.Advance(31 * time.Second)
	expect("idle", 200, "")

	// A player reads: active for IdleAfterMs.
	r := s.d.NewReader(context.Background())
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	expect("a player read", 503, "local activity")
	clk.Advance(29 * time.Second)
	expect("29 s after the read", 503, "local activity")
	clk.Advance(2 * time.Second)
	expect("31 s after the read", 200, "")

	// A busy CPU, then a quiet one (sampled at most once a second).
	setCPU(0.9, true)
	expect("CPU busy, not resampled yet", 200, "")
	clk.Advance(time.Second)
	expect("CPU busy", 503, "CPU 90% busy")
	setCPU(0, false)
	clk.Advance(time.Second)
	expect("CPU unknown", 503, "not measured")
	setCPU(0.2, true)
	clk.Advance(time.Second)
	expect("CPU quiet", 200, "")

	// An own download in progress (the edge withholds its chunks).
	o2 := e.addObject("/other.bin", testData(256<<10, 8), 64<<10)
	e.mu.Lock()
	delete(e.byRoot, o2.m.Root)
	e.mu.Unlock()
	d2, err := s.a.Download(context.Background(), "/other.bin")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	expect("own download running", 503, "download")
	st := s.a.Stats()
	if st.Refused[RefusedNotIdle] != 6 || st.UploadedChunks != 4 {
		t.Fatalf("stats %+v", st)
	}
	if d2.Stats().Complete {
		t.Fatal("the withheld download completed")
	}
}

// TestStatusEndpoint: GET /status on the player endpoint reports the caps
// and usage as JSON.
func TestStatusEndpoint(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/s.bin", testData(300_000, 3), 16<<10)
	s := newServingSeeder(t, e, o, Config{UploadLimitBps: 1 << 20, MaxUploads: 4, MaxConns: 9, MaxPeers: 7}, Deps{})
	if resp, _ := s.get(t, e.signedClient(t, nil, nil), 2); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	// The client has the whole chunk a moment before the server counts it.
	waitFor(t, "the upload counted", func() bool { return s.a.Stats().UploadedChunks == 1 })
	ps := httptest.NewServer(s.a.PlayerHandler())
	defer ps.Close()
	resp, err := http.Get(ps.URL + PathStatus)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status: %v %s", err, resp.Header.Get("Content-Type"))
	}
	want := map[string]any{
		"upload_mode": "on", "offering": true, "upload_limit_bps": float64(1 << 20),
		"max_uploads": float64(4), "max_conns": float64(9), "max_peers": float64(7),
		"uploaded_chunks": float64(1), "uploaded_bytes": float64(o.m.ChunkLen(2)), "downloads": float64(1),
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("%s = %v, want %v", k, st[k], v)
		}
	}
	disk, _ := st["disk"].(map[string]any)
	if disk == nil || disk["used_bytes"] != float64(o.m.Size) {
		t.Errorf("disk = %v", st["disk"])
	}
	if _, ok := st["refused"].(map[string]any); !ok {
		t.Errorf("refused = %v", st["refused"])
	}
	post, _ := http.Post(ps.URL+PathStatus, "text/plain", nil)
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /status: %d", post.StatusCode)
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCapsDefaults: zero values mean the documented defaults, and the
// upload cap is what the edge is told when no link rate is given.
func TestCapsDefaults(t *testing.T) {
	c := Config{UploadLimitBps: 5000}.WithDefaults()
	if c.UploadBps != 5000 || c.Upload != UploadOn || c.MaxConns != 256 || c.IdleAfterMs != 30000 || c.IdleCPUPercent != 50 {
		t.Fatalf("defaults %+v", c)
	}
	if c := (Config{UploadBps: 9000, UploadLimitBps: 5000}).WithDefaults(); c.UploadBps != 9000 {
		t.Fatalf("an explicit advertised rate was replaced: %d", c.UploadBps)
	}
	for _, cfg := range []Config{
		{Edge: "http://e:1", UploadLimitBps: -1},
		{Edge: "http://e:1", Upload: "maybe"},
	} {
		if _, err := New(cfg, Deps{}); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	for in, want := range map[string]UploadMode{"": UploadOn, "on": UploadOn, "off": UploadOff, "idle": UploadIdle} {
		if got, err := ParseUploadMode(in); err != nil || got != want {
			t.Errorf("ParseUploadMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseUploadMode("ON "); err == nil {
		t.Error("a padded mode was accepted")
	}
}
