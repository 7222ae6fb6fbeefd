package peer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// testCredential is another peer's identity with a ticket, for raw chunk
// requests to an agent.
type testCredential struct {
	id     string
	key    ed25519.PrivateKey
	ticket []byte
	now    func() time.Time // signing time; nil = time.Now
}

// credential returns a fresh identity with a ticket from e's key, issued
// at issued for ttl.
func (e *fakeEdge) credential(t testing.TB, issued time.Time, ttl time.Duration) *testCredential {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	tk, err := core.IssueTicket(e.priv, core.PeerIDOf(pub), pub, issued, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return &testCredential{id: core.PeerIDOf(pub), key: key, ticket: tk}
}

func (c *testCredential) sign(req *http.Request) {
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	wire.SignChunkRequest(req, c.ticket, c.key, now)
}

// signing is an http.RoundTripper that signs every request with c, then
// sends it with next (nil: http.DefaultTransport).
type signing struct {
	c    *testCredential
	next http.RoundTripper
}

func (s signing) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	s.c.sign(req)
	if s.next == nil {
		return http.DefaultTransport.RoundTrip(req)
	}
	return s.next.RoundTrip(req)
}

// signedClient returns a client whose requests carry a fresh identity's
// ticket from e, valid for an hour from now (by now, if not nil, which
// also signs); tr, if not nil, sends them.
func (e *fakeEdge) signedClient(t testing.TB, tr http.RoundTripper, now func() time.Time) *http.Client {
	t.Helper()
	at := time.Now()
	if now != nil {
		at = now()
	}
	c := e.credential(t, at, time.Hour)
	c.now = now
	return &http.Client{Transport: signing{c: c, next: tr}}
}

// seeder starts an agent holding the whole of o, serving on loopback with
// its advertised address; now, if not nil, is its clock.
func seeder(t *testing.T, e *fakeEdge, o *fakeObject, now func() time.Time) (*Agent, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Edge: e.srv.URL, Keys: e.keys(), Advertise: ln.Addr().String(), Name: "seed"},
		Deps{Store: seedStore(t, o), Logger: testLogger(t), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(ln)
	t.Cleanup(func() { a.Close() })
	d, err := a.Download(context.Background(), o.m.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a, "http://" + ln.Addr().String()
}

// A chunk server serves only requests with a valid ticket of the tier,
// proven by the ticket's key, meant for it, from a peer not revoked; each
// refusal is a 401 or 403 without chunk bytes, counted.
func TestChunkServerAuthorizes(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/f.bin", testData(200_000, 3), 16<<10)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a, base := seeder(t, e, o, clock)

	good := e.credential(t, now, 10*time.Minute)
	otherTier := &fakeEdge{priv: ed25519.NewKeyFromSeed(make([]byte, 32))}
	forged := otherTier.credential(t, now, 10*time.Minute)
	expired := e.credential(t, now.Add(-2*time.Hour), time.Hour)
	thief := e.credential(t, now, 10*time.Minute)
	thief.ticket = good.ticket // shows another peer's ticket with its own key
	late := e.credential(t, now, 10*time.Minute)
	late.now = func() time.Time { return now.Add(-wire.RequestSkew - time.Second) }

	fetch := func(sign func(*http.Request), host string) (int, string, int) {
		req, _ := http.NewRequest(http.MethodGet, base+wire.ChunkPath(o.m.Root, 2), nil)
		if host != "" {
			req.Host = host
		}
		if sign != nil {
			sign(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), len(b)
	}
	garbage := func(req *http.Request) {
		req.Header.Set("Authorization", wire.AuthScheme+" ticket=AAAA, time=1, sig=AAAA")
	}
	otherHost := func(req *http.Request) { good.sign(req) } // signed for the Host below
	proofForOther := func(req *http.Request) {
		req.Header.Set("Authorization", wire.NewChunkAuth(good.ticket, good.key, "127.0.0.1:1", time.Now()).String())
	}
	for _, tc := range []struct {
		name string
		sign func(*http.Request)
		host string
	}{
		{"no ticket", nil, ""},
		{"garbage", garbage, ""},
		{"ticket of another tier", forged.sign, ""},
		{"expired ticket", expired.sign, ""},
		{"stolen ticket", thief.sign, ""},
		{"stale proof", late.sign, ""},
		{"meant for another peer", otherHost, "127.0.0.1:1"},
		{"proof made for another peer", proofForOther, ""},
	} {
		code, auth, n := fetch(tc.sign, tc.host)
		if code != http.StatusUnauthorized || auth != wire.AuthScheme || n > 200 {
			t.Errorf("%s: %d (WWW-Authenticate %q), %d body bytes; want 401 and no chunk", tc.name, code, auth, n)
		}
	}
	if st := a.Stats(); st.UploadedChunks != 0 || st.UploadsUnauthorized != 8 {
		t.Fatalf("after refused requests: %+v", st)
	}
	// A valid ticket is served, again with the same (now checked) proof.
	start := now
	good.now = func() time.Time { return start }
	for range 2 {
		if code, _, n := fetch(good.sign, ""); code != http.StatusOK || n != o.m.ChunkLen(2) {
			t.Fatalf("valid ticket: %d, %d bytes", code, n)
		}
	}
	// The agent's clock decides expiry, for a checked proof and a new one.
	mu.Lock()
	now = now.Add(10*time.Minute + core.TicketSkew)
	mu.Unlock()
	if code, _, _ := fetch(good.sign, ""); code != http.StatusUnauthorized {
		t.Fatalf("checked proof of a ticket past expiry and skew on the agent's clock: %d", code)
	}
	good.now = clock
	if code, _, _ := fetch(good.sign, ""); code != http.StatusUnauthorized {
		t.Fatalf("ticket past expiry and skew on the agent's clock: %d", code)
	}
	fresh := e.credential(t, now, 10*time.Minute)
	fresh.now = clock

	// The edge names fresh as revoked: once the agent has announced, it
	// refuses fresh with 403.
	e.mu.Lock()
	e.revoked = []wire.Revocation{{PeerID: fresh.id, At: now.UnixMilli(), Until: now.Add(time.Hour).UnixMilli()}}
	e.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for !a.isRevoked(fresh.id, clock()) {
		if time.Now().After(deadline) {
			t.Fatal("revocation not learned from the announce")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, n := fetch(fresh.sign, ""); code != http.StatusForbidden || n > 200 {
		t.Fatalf("revoked peer: %d, %d bytes", code, n)
	}
	if st := a.Stats(); st.UploadedChunks != 2 || st.UploadsUnauthorized != 10 || st.UploadsForbidden != 1 {
		t.Fatalf("stats %+v", st)
	}
	if a.revokedSince() != now.UnixMilli() {
		t.Fatalf("revocation cursor %d, want %d", a.revokedSince(), now.UnixMilli())
	}
}

// An agent holds a bounded revocation list: lapsed entries and bad ids
// are not kept, the cursor is the newest time, and past the bound the
// entry that lapses first goes.
func TestRevocationsHeldBounded(t *testing.T) {
	e := newFakeEdge(t, 0)
	a, err := New(Config{Edge: e.srv.URL, Keys: e.keys()}, Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	now := time.Now().UnixMilli()
	a.addRevocations([]wire.Revocation{
		{PeerID: "lapsed", At: now - 10, Until: now - 1},
		{PeerID: "bad id", At: now, Until: now + 1000},
		{PeerID: "p1", At: now - 5, Until: now + 60_000},
	})
	if a.isRevoked("lapsed", time.Now()) || a.isRevoked("bad id", time.Now()) || !a.isRevoked("p1", time.Now()) || a.revokedSince() != now-5 {
		t.Fatalf("after merge: %v, cursor %d", a.revoked, a.revokedSince())
	}
	for k := 0; k < 2*maxRevocationsHeld/wire.MaxRevocations; k++ {
		batch := make([]wire.Revocation, wire.MaxRevocations)
		for i := range batch {
			batch[i] = wire.Revocation{PeerID: fmt.Sprintf("q%d-%d", k, i), At: now, Until: now + int64(1_000_000+k*1000+i)}
		}
		a.addRevocations(batch)
	}
	a.mu.Lock()
	n := len(a.revoked)
	_, oldest := a.revoked["q0-0"]
	_, newest := a.revoked[fmt.Sprintf("q%d-%d", 2*maxRevocationsHeld/wire.MaxRevocations-1, wire.MaxRevocations-1)]
	a.mu.Unlock()
	if n > maxRevocationsHeld || n < maxRevocationsHeld*9/10 || oldest || !newest {
		t.Fatalf("%d held (max %d), soonest-lapsing kept %v, latest kept %v", n, maxRevocationsHeld, oldest, newest)
	}
}

// A downloader whose ticket a peer refuses (401) asks its edge for a new
// one at the next announce and goes on fetching from that peer: a 401 is
// not the peer's fault and does not get it banned. Tickets are also
// renewed once half their lifetime has passed.
func TestTicketRenewal(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 4e6) // a slow edge: the seeder is worth asking
	o := e.addObject("/f.bin", testData(2<<20, 4), 16<<10)
	seed, _ := seeder(t, e, o, nil)

	sp := newSwarmPeer(t, e, peerOpts{name: "late", seed: 9})
	if _, _, err := sp.a.session(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Give the downloader a ticket that looks fresh to it but that the
	// seeder refuses (signed under a key it does not trust, as after a key
	// rotation the seeder has not heard of).
	now := time.Now()
	pub := sp.a.identity.Public().(ed25519.PublicKey)
	stale, err := core.IssueTicket(ed25519.NewKeyFromSeed(make([]byte, 32)), sp.a.PeerID(), pub, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sp.a.mu.Lock()
	sp.a.ticket = &heldTicket{raw: stale, issued: now.Truncate(time.Second), expires: now.Add(time.Hour)}
	sp.a.renew = false
	sp.a.mu.Unlock()
	if sp.a.wantTicket() {
		t.Fatal("a fresh-looking ticket is renewed before any refusal: the test would prove nothing")
	}
	d, err := sp.a.Download(context.Background(), "/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, ss := d.Stats(), seed.Stats()
	t.Logf("edge %d, peer %d bytes; seeder refused %d, served %d chunks", st.Bytes[KindEdge], st.Bytes[KindPeer], ss.UploadsUnauthorized, ss.UploadedChunks)
	switch {
	case ss.UploadsUnauthorized == 0:
		t.Fatal("the seeder never refused the stale ticket: the test proves nothing")
	case st.Bytes[KindPeer] == 0 || ss.UploadedChunks == 0:
		t.Fatal("no chunk from the seeder after the ticket was renewed")
	case len(st.Banned) != 0:
		t.Fatalf("banned %v for refusing a stale ticket", st.Banned)
	}
	sp.a.mu.Lock()
	raw := sp.a.ticket.raw
	sp.a.mu.Unlock()
	if _, err := core.ParseTicket(raw, e.keys(), time.Now()); err != nil {
		t.Fatalf("the agent holds no valid ticket after renewal: %v", err)
	}

	// Half-life: with 2 s tickets the agent asks for a new one within
	// about a second, through its announces.
	e.mu.Lock()
	e.ticketTTL = 2 * time.Second
	e.mu.Unlock()
	sp.a.peerRefused("x", http.StatusUnauthorized, nil) // get a 2 s ticket first
	deadline := time.Now().Add(10 * time.Second)
	var first time.Time
	for {
		sp.a.mu.Lock()
		cur := sp.a.ticket.issued
		life := sp.a.ticket.expires.Sub(sp.a.ticket.issued)
		sp.a.mu.Unlock()
		if life == 2*time.Second && first.IsZero() {
			first = cur
		}
		if !first.IsZero() && cur.After(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a short-lived ticket was not renewed before it expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The proof and check caches stay within their bound.
func TestAuthCacheBounded(t *testing.T) {
	c := authCache[int]{limit: 3}
	for i := range 10 {
		c.put(fmt.Sprint(i), i)
		if len(c.m) > 3 {
			t.Fatalf("%d entries, limit 3", len(c.m))
		}
		if v, ok := c.get(fmt.Sprint(i)); !ok || v != i {
			t.Fatalf("entry %d lost right after put", i)
		}
	}
}
