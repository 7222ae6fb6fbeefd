package peer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

var peerLog = flag.Bool("peerlog", false, "print agent logs")

func testLogger(t testing.TB) *slog.Logger {
	if !*peerLog {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func edgeKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
}

func testData(size int, seed uint64) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// fakeObject is one object the fake edge serves.
type fakeObject struct {
	data []byte
	m    *core.Manifest
	enc  []byte
}

// fakeEdge is a small in-test edge: keys, signed manifests, chunks (through
// a shaped listener) and a tracker that hands every peer all the others.
type fakeEdge struct {
	t    testing.TB
	priv ed25519.PrivateKey
	srv  *httptest.Server
	link netem.Link

	mu       sync.Mutex
	objects  map[string]*fakeObject         // guarded by mu; by URL
	byRoot   map[core.Hash]*fakeObject      // guarded by mu
	peers    map[string]*trackedPeer        // guarded by mu; by peer ID
	order    []string                       // guarded by mu: registration order
	reports  []wire.ReportRequest           // guarded by mu
	extra    []wire.PeerInfo                // guarded by mu: fake peers in every hand-out
	manifest func(url string) ([]byte, int) // guarded by mu: overrides the manifest answer
	// chunkEdit, if set, may alter a chunk body before it is sent (guarded by mu).
	chunkEdit func(i int, body []byte) []byte
	// announceMs is the announce interval the announce responses carry
	// (guarded by mu); 0 means 500.
	announceMs int
	// ticketTTL is the lifetime of the tickets issued (guarded by mu); 0
	// means 10 minutes. revoked is sent in every announce response.
	ticketTTL time.Duration
	revoked   []wire.Revocation

	chunkBytes atomic.Int64 // chunk payload bytes served
	manifests  atomic.Int64 // manifest requests
	announces  atomic.Int64
}

type trackedPeer struct {
	id, token, addr string
	key             ed25519.PublicKey
	have            map[string][]byte // root hex → bitfield
}

// ticketLocked issues a ticket for tp, as the edge does (caller holds mu).
func (e *fakeEdge) ticketLocked(tp *trackedPeer) []byte {
	if len(tp.key) != ed25519.PublicKeySize {
		return nil
	}
	ttl := e.ticketTTL
	if ttl == 0 {
		ttl = 10 * time.Minute
	}
	t, err := core.IssueTicket(e.priv, tp.id, tp.key, time.Now(), ttl)
	if err != nil {
		e.t.Errorf("issue ticket: %v", err)
	}
	return t
}

func newFakeEdge(t testing.TB, upBits float64) *fakeEdge {
	e := &fakeEdge{
		t:       t,
		priv:    edgeKey(),
		link:    netem.NewLink(upBits, 0),
		objects: map[string]*fakeObject{},
		byRoot:  map[core.Hash]*fakeObject{},
		peers:   map[string]*trackedPeer{},
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.Listener = e.link.Listener(e.srv.Listener)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEdge) keys() core.KeyRing { return core.NewKeyRing(e.priv.Public().(ed25519.PublicKey)) }

func (e *fakeEdge) addObject(url string, data []byte, chunk int) *fakeObject {
	e.t.Helper()
	m, err := core.BuildManifest(bytes.NewReader(data), url, `"v1"`, "video/mp4", int64(len(data)), chunk)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.Sign(e.priv); err != nil {
		e.t.Fatal(err)
	}
	enc, err := m.MarshalBinary()
	if err != nil {
		e.t.Fatal(err)
	}
	o := &fakeObject{data: data, m: m, enc: enc}
	e.mu.Lock()
	e.objects[url], e.byRoot[m.Root] = o, o
	e.mu.Unlock()
	return o
}

func (e *fakeEdge) reportsAbout(offender string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.reports {
		if r.Offender == offender {
			n++
		}
	}
	return n
}

// reportsOf counts the reports of one kind about offender ("" kind is a
// bad chunk).
func (e *fakeEdge) reportsOf(offender, kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.reports {
		if r.Offender == offender && (r.Kind == kind || kind == wire.ReportBadChunk && r.Kind == "") {
			n++
		}
	}
	return n
}

func (e *fakeEdge) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == wire.PathKey:
		pub := e.priv.Public().(ed25519.PublicKey)
		json.NewEncoder(w).Encode(wire.KeyResponse{Keys: []wire.KeyInfo{{ID: core.KeyIDOf(pub), PublicKey: pub}}})
	case p == wire.PathManifest:
		e.manifests.Add(1)
		url := r.URL.Query().Get("url")
		e.mu.Lock()
		override, o := e.manifest, e.objects[url]
		e.mu.Unlock()
		if override != nil {
			body, code := override(url)
			if code != 0 {
				w.WriteHeader(code)
				w.Write(body)
				return
			}
			if body != nil {
				w.Header().Set("Content-Type", wire.ContentTypeManifest)
				w.Write(body)
				return
			}
		}
		if o == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", wire.ContentTypeManifest)
		w.Write(o.enc)
	case p == wire.PathRegister:
		var req wire.RegisterRequest
		if json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad json", 400)
			return
		}
		e.mu.Lock()
		id := fmt.Sprintf("p%02d-%s", len(e.order)+1, req.Name)
		tp := &trackedPeer{id: id, token: "tok-" + id, addr: req.Addr, key: req.PublicKey, have: map[string][]byte{}}
		e.peers[id] = tp
		e.order = append(e.order, id)
		ticket := e.ticketLocked(tp)
		e.mu.Unlock()
		json.NewEncoder(w).Encode(wire.RegisterResponse{PeerID: id, Token: tp.token, AnnounceIntervalMs: 500, Ticket: ticket})
	case p == wire.PathAnnounce:
		e.announces.Add(1)
		var req wire.AnnounceRequest
		if json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad json", 400)
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		tp := e.peers[req.PeerID]
		if tp == nil || tp.token != req.Token {
			http.Error(w, "unknown peer", http.StatusUnauthorized)
			return
		}
		if req.Leaving {
			delete(tp.have, req.Root)
			json.NewEncoder(w).Encode(wire.AnnounceResponse{})
			return
		}
		tp.have[req.Root] = req.Have
		resp := wire.AnnounceResponse{AnnounceIntervalMs: 500}
		if e.announceMs != 0 {
			resp.AnnounceIntervalMs = e.announceMs
		}
		for _, id := range e.order {
			o := e.peers[id]
			h, ok := o.have[req.Root]
			if id == req.PeerID || !ok || o.addr == "" {
				continue
			}
			resp.Peers = append(resp.Peers, wire.PeerInfo{PeerID: id, Addr: o.addr, Have: h})
		}
		resp.Peers = append(resp.Peers, e.extra...)
		if req.RenewTicket {
			resp.Ticket = e.ticketLocked(tp)
		}
		resp.Revoked = e.revoked
		json.NewEncoder(w).Encode(resp)
	case p == wire.PathReport:
		var req wire.ReportRequest
		json.NewDecoder(r.Body).Decode(&req)
		e.mu.Lock()
		e.reports = append(e.reports, req)
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(p, wire.PathChunk):
		root, i, err := wire.ParseChunkPath(p)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		e.mu.Lock()
		o, edit := e.byRoot[root], e.chunkEdit
		e.mu.Unlock()
		if o == nil || i >= o.m.NumChunks() {
			http.NotFound(w, r)
			return
		}
		chunk := o.data[o.m.ChunkOffset(i) : o.m.ChunkOffset(i)+int64(o.m.ChunkLen(i))]
		if edit != nil {
			chunk = edit(i, bytes.Clone(chunk))
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(chunk)))
		n, _ := w.Write(chunk)
		e.chunkBytes.Add(int64(n))
	default:
		http.NotFound(w, r)
	}
}

// swarmPeer is one agent in the harness, serving through its own shaped
// listener with a test wrapper around its handler.
type swarmPeer struct {
	name    string
	a       *Agent
	link    netem.Link
	hc      *http.Client
	srv     *http.Server
	d       *Download
	badSent atomic.Int64 // 200 responses whose body failed verification
	served  atomic.Int64 // chunk requests answered 200
}

type peerOpts struct {
	name             string
	upBits, downBits float64
	cfg              func(*Config)
	wrap             func(sp *swarmPeer, h http.Handler) http.Handler // nil = checker
	store            chunkstore.Store
	seed             uint64
	policy           ChunkPolicy
}

func newSwarmPeer(t testing.TB, e *fakeEdge, o peerOpts) *swarmPeer {
	t.Helper()
	sp := &swarmPeer{name: o.name, link: netem.NewLink(o.upBits, o.downBits)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		DialContext:         sp.link.DialContext(nil),
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	sp.hc = &http.Client{Transport: tr}
	cfg := Config{Edge: e.srv.URL, Advertise: ln.Addr().String(), Name: o.name, Keys: e.keys()}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	sp.a, err = New(cfg, Deps{
		HTTP:   sp.hc,
		Store:  o.store,
		Logger: testLogger(t),
		Rand:   rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)),
		Policy: o.policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	wrap := o.wrap
	if wrap == nil {
		wrap = checker
	}
	sp.srv = &http.Server{Handler: wrap(sp, sp.a.Handler())}
	go sp.srv.Serve(sp.link.Listener(ln))
	t.Cleanup(func() {
		sp.a.Close()
		sp.srv.Close()
		tr.CloseIdleConnections()
	})
	return sp
}

// recorder buffers a response so a wrapper can inspect or alter its body.
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(p)
}

// intercept runs h into a recorder, lets edit change the body of chunk
// responses, and sends the result on.
func intercept(sp *swarmPeer, h http.Handler, edit func(root core.Hash, i int, body []byte) []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{h: w.Header()}
		h.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = 200
		}
		body := rec.body.Bytes()
		if root, i, err := wire.ParseChunkPath(r.URL.Path); err == nil && rec.code == 200 {
			sp.served.Add(1)
			body = edit(root, i, body)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.code)
		w.Write(body)
	})
}

// checker wraps an honest peer: it counts every served chunk that does not
// verify against the manifest (must stay 0).
func checker(sp *swarmPeer, h http.Handler) http.Handler {
	return intercept(sp, h, func(root core.Hash, i int, body []byte) []byte {
		if d := sp.a.liveDownload(root); d == nil || d.m.CheckChunk(i, body) != nil {
			sp.badSent.Add(1)
		}
		return body
	})
}

// bitFlipper wraps a malicious peer that flips a bit in every chunk it sends.
func bitFlipper(sp *swarmPeer, h http.Handler) http.Handler {
	return intercept(sp, h, func(_ core.Hash, _ int, body []byte) []byte {
		b := bytes.Clone(body)
		if len(b) > 0 {
			b[len(b)/2] ^= 0x10
		}
		return b
	})
}

// seedStore returns a memory store that already holds the whole object.
func seedStore(t testing.TB, o *fakeObject) chunkstore.Store {
	s := chunkstore.NewMemory()
	obj, err := s.Open(o.m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < o.m.NumChunks(); i++ {
		if err := obj.WriteChunk(i, o.data[o.m.ChunkOffset(i):o.m.ChunkOffset(i)+int64(o.m.ChunkLen(i))]); err != nil {
			t.Fatal(err)
		}
	}
	obj.Close()
	t.Cleanup(func() { s.Close() })
	return s
}

// swarmSpec describes one harness run.
type swarmSpec struct {
	peers                    int
	size, chunk              int
	edgeUp, peerUp, peerDown float64 // bit/s
	evil                     int     // bit-flipping seeders added to the swarm
	cfg                      func(*Config)
	policy                   ChunkPolicy // nil = DefaultPolicy
	timeout                  time.Duration
}

type swarmResult struct {
	tstar      time.Duration
	max, mean  time.Duration
	edgeBytes  int64 // all chunk bytes the honest peers got from the edge
	peerBytes  int64
	corrupt    int
	edgeServed int64
	peers      []*swarmPeer
	evil       []*swarmPeer
	edge       *fakeEdge
	obj        *fakeObject
}

func (r swarmResult) offload() float64 {
	return float64(r.peerBytes) / float64(r.peerBytes+r.edgeBytes)
}

func (r swarmResult) String() string {
	return fmt.Sprintf("T*=%.2fs max=%.2fs (%.2f×T*) mean=%.2fs offload=%.1f%% edge served %.1f MiB, corrupt=%d",
		r.tstar.Seconds(), r.max.Seconds(), r.max.Seconds()/r.tstar.Seconds(), r.mean.Seconds(),
		100*r.offload(), float64(r.edgeServed)/(1<<20), r.corrupt)
}

// fluidBound is T* = max(F/u_edge, F/d, N·F/(u_edge+Σu_peer)).
func fluidBound(n int, size int, edgeUp, peerUp, peerDown float64) time.Duration {
	F := float64(size) * 8
	t := F / edgeUp
	if peerDown > 0 {
		t = max(t, F/peerDown)
	}
	t = max(t, float64(n)*F/(edgeUp+float64(n)*peerUp))
	return time.Duration(t * float64(time.Second))
}

// runSwarm starts every peer's download at once and waits for all of them,
// checking that each ends with exactly the object's bytes.
func runSwarm(t testing.TB, s swarmSpec) swarmResult {
	t.Helper()
	e := newFakeEdge(t, s.edgeUp)
	obj := e.addObject("/files/big.bin", testData(s.size, 1), s.chunk)
	res := swarmResult{edge: e, obj: obj, tstar: fluidBound(s.peers, s.size, s.edgeUp, s.peerUp, s.peerDown)}
	for k := 0; k < s.evil; k++ {
		sp := newSwarmPeer(t, e, peerOpts{name: fmt.Sprintf("evil%d", k), upBits: s.peerUp, downBits: s.peerDown,
			wrap: bitFlipper, store: seedStore(t, obj), seed: uint64(1000 + k), cfg: s.cfg})
		d, err := sp.a.Download(context.Background(), "/files/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		sp.d = d
		res.evil = append(res.evil, sp)
	}
	for k := 0; k < s.peers; k++ {
		res.peers = append(res.peers, newSwarmPeer(t, e, peerOpts{name: fmt.Sprintf("n%d", k), upBits: s.peerUp,
			downBits: s.peerDown, seed: uint64(k + 1), cfg: s.cfg, policy: s.policy}))
	}
	timeout := s.timeout
	if timeout == 0 {
		timeout = 10*res.tstar + 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(res.peers))
	took := make([]time.Duration, len(res.peers))
	for k, sp := range res.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := sp.a.Download(ctx, "/files/big.bin")
			if err != nil {
				errs[k] = err
				return
			}
			sp.d = d
			errs[k] = d.Wait(ctx)
			took[k] = time.Since(start)
		}()
	}
	wg.Wait()
	for k, sp := range res.peers {
		if errs[k] != nil {
			t.Fatalf("peer %s: %v", sp.name, errs[k])
		}
		st := sp.d.Stats()
		if !st.Complete {
			t.Fatalf("peer %s: not complete", sp.name)
		}
		got, err := io.ReadAll(sp.d.NewReader(ctx))
		if err != nil {
			t.Fatalf("peer %s: read: %v", sp.name, err)
		}
		if !bytes.Equal(got, obj.data) {
			t.Fatalf("peer %s: object bytes differ", sp.name)
		}
		res.edgeBytes += st.Bytes[KindEdge]
		res.peerBytes += st.Bytes[KindPeer]
		res.corrupt += st.CorruptChunks
		res.max = max(res.max, took[k])
		res.mean += took[k] / time.Duration(len(res.peers))
	}
	res.edgeServed = e.chunkBytes.Load()
	for _, sp := range res.peers {
		if n := sp.badSent.Load(); n != 0 {
			t.Errorf("honest peer %s served %d chunks that fail verification", sp.name, n)
		}
	}
	return res
}

// checkNoLeaks fails if goroutines of this package's agents outlive them.
func checkNoLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 4<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var leaked []string
		for _, g := range strings.Split(stacks, "\n\n") {
			for _, fn := range []string{"peer.(*loop)", "peer.(*Download)", "peer.(*Agent)"} {
				if strings.Contains(g, fn) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines leaked, e.g.:\n%s", len(leaked), leaked[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
