package swarm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// clock is a manual clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTracker(t *testing.T, cfg Config) (*Tracker, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = -1 // tests force expiry with Sweep
	}
	tr, err := New(cfg, Deps{Now: clk.Now, Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, clk
}

func register(t *testing.T, tr *Tracker, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		id, _, err := tr.Register(fmt.Sprintf("127.0.0.1:%d", 7000+i), fmt.Sprintf("p%d", i), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

var root = core.HashBytes([]byte("object"))

func TestRegisterAuthenticate(t *testing.T) {
	tr, _ := newTracker(t, Config{})
	id, tok, err := tr.Register("10.0.0.1:7001", "a", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 32 {
		t.Errorf("token %q: want 32 hex digits (128 bits)", tok)
	}
	if !tr.Authenticate(id, tok) {
		t.Error("valid token refused")
	}
	if tr.Authenticate(id, tok[:31]+"x") || tr.Authenticate(id, "") || tr.Authenticate("nobody", tok) {
		t.Error("invalid credentials accepted")
	}
	id2, tok2, _ := tr.Register("", "", 0)
	if id2 == id || tok2 == tok {
		t.Error("ids or tokens repeat")
	}
	if tr.Authenticate(id2, tok) {
		t.Error("one peer's token authenticates another")
	}
}

func TestRegisterRejectsBadInput(t *testing.T) {
	tr, _ := newTracker(t, Config{})
	for name, tc := range map[string]struct {
		addr, name string
		bps        int64
	}{
		"addr without port": {"10.0.0.1", "", 0},
		"addr too long":     {string(make([]byte, MaxAddrLen+1)), "", 0},
		"name too long":     {"", string(make([]byte, MaxNameLen+1)), 0},
		"negative upload":   {"", "", -1},
		"empty host":        {":7000", "", 0},
	} {
		if _, _, err := tr.Register(tc.addr, tc.name, tc.bps); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
	}
	if s := tr.Stats(); s.Peers != 0 {
		t.Errorf("bad input registered %d peers", s.Peers)
	}
}

func TestRegisterBounded(t *testing.T) {
	tr, clk := newTracker(t, Config{MaxPeers: 3, RegistrationTTL: time.Minute})
	register(t, tr, 3)
	if _, _, err := tr.Register("", "", 0); !errors.Is(err, ErrTooManyPeers) {
		t.Fatalf("4th register: err = %v, want ErrTooManyPeers", err)
	}
	// Stale registrations make room again.
	clk.Advance(2 * time.Minute)
	if _, _, err := tr.Register("", "", 0); err != nil {
		t.Fatalf("register after expiry: %v", err)
	}
	if s := tr.Stats(); s.Peers != 1 {
		t.Errorf("peers = %d, want 1", s.Peers)
	}
}

func TestHandoutFilters(t *testing.T) {
	tr, _ := newTracker(t, Config{})
	const n = 10
	p := register(t, tr, 4)
	leech, _, _ := tr.Register("", "leech", 0) // no address: never handed out
	for _, a := range []struct {
		id   string
		have core.Bitfield
	}{
		{p[0], bf(n)},          // requester
		{p[1], bf(n, 1, 2)},    // useful
		{p[2], bf(n)},          // empty: not handed out
		{p[3], bf(n, 1, 2, 3)}, // useful
		{leech, bf(n, 1, 2, 3, 4)},
	} {
		if err := tr.Announce(a.id, root, n, a.have); err != nil {
			t.Fatal(err)
		}
	}
	got := ids(tr.Handout(root, p[0], 0))
	if want := []string{p[3], p[1]}; !slices.Equal(got, want) {
		t.Fatalf("hand-out = %v, want %v (requester, empty and address-less peers excluded)", got, want)
	}
	if got := tr.Handout(root, p[0], 1); len(got) != 1 {
		t.Errorf("want=1 gave %d peers", len(got))
	}
	if got := tr.Handout(core.HashBytes([]byte("other")), p[0], 0); len(got) != 0 {
		t.Errorf("unknown object handed out %v", ids(got))
	}
	tr.Leave(p[3], root)
	if got := ids(tr.Handout(root, p[0], 0)); !slices.Equal(got, []string{p[1]}) {
		t.Errorf("after leave: %v, want [%s]", got, p[1])
	}
}

func TestHandoutWantBounded(t *testing.T) {
	tr, _ := newTracker(t, Config{})
	p := register(t, tr, wire.MaxHandout+20)
	for _, id := range p {
		if err := tr.Announce(id, root, 1, bf(1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(tr.Handout(root, "someone", 0)); got != 50 {
		t.Errorf("default hand-out = %d peers, want 50", got)
	}
	if got := len(tr.Handout(root, "someone", 1<<20)); got != wire.MaxHandout {
		t.Errorf("huge want gave %d peers, want %d", got, wire.MaxHandout)
	}
}

func TestHandoutExpiry(t *testing.T) {
	tr, clk := newTracker(t, Config{PeerTTL: 10 * time.Second})
	p := register(t, tr, 3)
	for _, id := range p {
		if err := tr.Announce(id, root, 4, bf(4, 0)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(8 * time.Second)
	tr.Announce(p[1], root, 4, bf(4, 0, 1)) // p1 stays live
	clk.Advance(3 * time.Second)            // p2 is now 11 s old
	if got := ids(tr.Handout(root, p[0], 0)); !slices.Equal(got, []string{p[1]}) {
		t.Fatalf("hand-out = %v, want only the live peer %s", got, p[1])
	}
	if s := tr.Stats(); s.Members != 1 {
		t.Errorf("expired members still held: %d members, want 1", s.Members)
	}
	clk.Advance(time.Minute)
	tr.Sweep()
	if s := tr.Stats(); s.Objects != 0 || s.Members != 0 {
		t.Errorf("after sweep: %d objects, %d members, want none", s.Objects, s.Members)
	}
}

func TestReportBan(t *testing.T) {
	tr, _ := newTracker(t, Config{})
	p := register(t, tr, 4)
	bad, r1, r2, asker := p[0], p[1], p[2], p[3]
	for _, id := range p {
		tr.Announce(id, root, 2, bf(2, 0))
	}
	if err := tr.Report(bad, bad, root, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("self-report: err = %v", err)
	}
	if err := tr.Report(r1, "nobody", root, 0); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("report of unknown peer: err = %v", err)
	}
	// The same reporter twice is one report.
	tr.Report(r1, bad, root, 0)
	tr.Report(r1, bad, root, 1)
	if tr.IsBanned(bad) || !slices.Contains(ids(tr.Handout(root, asker, 0)), bad) {
		t.Fatal("banned after a single distinct reporter")
	}
	if err := tr.Report(r2, bad, root, 0); err != nil {
		t.Fatal(err)
	}
	if !tr.IsBanned(bad) || !slices.Equal(tr.Banned(), []string{bad}) {
		t.Fatalf("not banned after two distinct reporters; Banned() = %v", tr.Banned())
	}
	if slices.Contains(ids(tr.Handout(root, asker, 0)), bad) {
		t.Error("banned peer handed out")
	}
	if err := tr.Announce(bad, root, 2, bf(2, 0, 1)); !errors.Is(err, ErrBanned) {
		t.Errorf("banned peer's announce: err = %v, want ErrBanned", err)
	}
	if slices.Contains(ids(tr.Handout(root, asker, 0)), bad) {
		t.Error("banned peer handed out after announcing again")
	}
	if s := tr.Stats(); s.BansTotal != 1 || s.Banned != 1 {
		t.Errorf("stats: %+v", s)
	}
	// A banned peer's reports do not count.
	tr.Report(bad, r1, root, 0)
	tr.Report(r2, r1, root, 0)
	if tr.IsBanned(r1) {
		t.Error("banned peer's report counted toward a ban")
	}
}

// TestBannedAddressCannotReregister: a banned peer that registers again from
// the same address is refused until the ban expires with RegistrationTTL.
func TestBannedAddressCannotReregister(t *testing.T) {
	tr, clk := newTracker(t, Config{})
	p := register(t, tr, 3) // addresses 127.0.0.1:7000..7002
	tr.Report(p[1], p[0], root, 0)
	tr.Report(p[2], p[0], root, 0)
	if !tr.IsBanned(p[0]) {
		t.Fatal("not banned")
	}
	if _, _, err := tr.Register("127.0.0.1:7000", "again", 0); !errors.Is(err, ErrBanned) {
		t.Fatalf("re-register of a banned address: err = %v, want ErrBanned", err)
	}
	if _, _, err := tr.Register("127.0.0.1:7100", "other", 0); err != nil {
		t.Fatalf("other address refused: %v", err)
	}
	clk.Advance(tr.Config().RegistrationTTL + time.Second)
	tr.Sweep()
	if _, _, err := tr.Register("127.0.0.1:7000", "later", 0); err != nil {
		t.Fatalf("ban did not expire: %v", err)
	}
}

func TestAnnounceRejects(t *testing.T) {
	tr, _ := newTracker(t, Config{MaxObjects: 1, MaxPeersPerObject: 2})
	p := register(t, tr, 3)
	if err := tr.Announce("nobody", root, 4, bf(4)); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("unknown peer: %v", err)
	}
	if err := tr.Announce(p[0], root, 4, bf(5)); !errors.Is(err, ErrBitfieldLength) {
		t.Errorf("bitfield length mismatch: %v", err)
	}
	if err := tr.Announce(p[0], root, 4, bf(4, 1)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Announce(p[1], root, 5, bf(5, 1)); !errors.Is(err, ErrBitfieldLength) {
		t.Errorf("chunk count differing from the tracked object: %v", err)
	}
	if err := tr.Announce(p[0], core.HashBytes([]byte("2nd")), 1, bf(1)); !errors.Is(err, ErrTooManyObjects) {
		t.Errorf("object bound: %v", err)
	}
	tr.Announce(p[1], root, 4, bf(4, 2))
	if err := tr.Announce(p[2], root, 4, bf(4, 3)); err != nil {
		t.Errorf("announce into a full swarm: %v (want nil, not recorded)", err)
	}
	if s := tr.Stats(); s.Members != 2 || s.AnnouncesDropped != 1 {
		t.Errorf("full swarm: %d members, %d dropped; want 2, 1", s.Members, s.AnnouncesDropped)
	}
	if got := len(tr.Handout(root, p[2], 0)); got != 2 {
		t.Errorf("peer outside a full swarm got %d peers, want 2", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	tr, _ := newTracker(t, Config{})
	p := register(t, tr, 32)
	var wg sync.WaitGroup
	for i, id := range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				tr.Announce(id, root, 64, bf(64, (i+j)%64))
				tr.Handout(root, id, 10)
				if j%50 == 0 {
					tr.Report(id, p[(i+1)%len(p)], root, j%64)
				}
			}
		}()
	}
	wg.Wait()
	tr.Sweep()
	_ = tr.Stats()
}

func TestCloseStopsSweeper(t *testing.T) {
	defer goleak.VerifyNone(t)
	tr, err := New(Config{SweepInterval: time.Millisecond}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := tr.Register("127.0.0.1:1", "", 0)
	tr.Announce(id, root, 1, bf(1, 0))
	tr.Close()
	tr.Close() // idempotent
}

func TestConfigValidation(t *testing.T) {
	if _, err := New(Config{MaxPeers: -1}, Deps{}); err == nil {
		t.Error("negative MaxPeers accepted")
	}
	if _, err := New(Config{Policy: "nope"}, Deps{}); err == nil {
		t.Error("unknown policy accepted")
	}
}

// A swarm larger than HandoutSample is sampled: every hand-out ranks at
// most HandoutSample candidates, and over many hand-outs every holder is
// handed out (the sample is uniform, not the first members found).
func TestHandoutSamplesLargeSwarm(t *testing.T) {
	const n, sample, want = 300, 40, 10
	tr, _ := newTracker(t, Config{HandoutSample: sample})
	ids := register(t, tr, n)
	for i, id := range ids {
		have := bf(8, i%8)
		if i == 0 {
			have = bf(8) // the requester: every holder is as useful to it
		}
		if err := tr.Announce(id, root, 8, have); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for range 400 {
		got := tr.Handout(root, ids[0], want)
		if len(got) != want {
			t.Fatalf("hand-out of %d, want %d", len(got), want)
		}
		for _, c := range got {
			if c.PeerID == ids[0] {
				t.Fatal("requester handed itself")
			}
			seen[c.PeerID]++
		}
	}
	if len(seen) < n-1-10 {
		t.Errorf("only %d of %d holders were ever handed out; the sample is not uniform", len(seen), n-1)
	}
}

// The holders index follows announces, leaves, expiry and bans: only
// reachable members holding a chunk are ever candidates.
func TestHandoutHoldersIndex(t *testing.T) {
	tr, clk := newTracker(t, Config{HandoutSample: 3})
	ids := register(t, tr, 6)
	leech, _, err := tr.Register("", "leech", 0) // no address: never handed out
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(slices.Clone(ids), leech) {
		if err := tr.Announce(id, root, 8, bf(8, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// ids[1] announces an empty bitfield (it dropped its chunks), ids[2]
	// leaves, ids[3] goes silent and expires.
	if err := tr.Announce(ids[1], root, 8, bf(8)); err != nil {
		t.Fatal(err)
	}
	tr.Leave(ids[2], root)
	clk.Advance(6 * time.Second)
	for _, id := range []string{ids[0], ids[4], ids[5], ids[1]} {
		if err := tr.Announce(id, root, 8, tr.haveOf(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(6 * time.Second)
	tr.Sweep()
	want := []string{ids[4], ids[5]}
	slices.Sort(want)
	for range 50 {
		var got []string
		for _, c := range tr.Handout(root, ids[0], 10) {
			got = append(got, c.PeerID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("hand-out %v, want %v", got, want)
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	o := tr.objects[root]
	for i, id := range o.holders {
		if m := o.members[id]; m == nil || m.pos != i {
			t.Fatalf("holders[%d] = %s: member %+v out of step", i, id, m)
		}
	}
}

// haveOf is a test helper: the bitfield id last announced for root.
func (tr *Tracker) haveOf(t *testing.T, id string) core.Bitfield {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.objects[root].members[id].have
}

// AnnounceInterval: the configured interval until the swarm's members
// would exceed the budget, then members / budget (whole milliseconds,
// rounded up), growing with the swarm and never below the configured
// interval, capped at PeerTTL / 2 so that no live member expires; no
// budget means the configured interval.
func TestAnnounceInterval(t *testing.T) {
	base := 500 * time.Millisecond
	for _, c := range []struct {
		cfg     Config
		members int
		want    time.Duration
	}{
		{Config{}, 0, base},
		{Config{}, 1, base},
		{Config{}, 1000, base}, // 1000 / 2000 per s = 500 ms
		{Config{}, 1001, 501 * time.Millisecond},
		{Config{}, 4000, 2 * time.Second},
		{Config{}, 10_000, 5 * time.Second},
		{Config{}, 100_000, 5 * time.Second},                       // PeerTTL / 2
		{Config{PeerTTL: time.Minute}, 100_000, 30 * time.Second},  // PeerTTL / 2
		{Config{PeerTTL: time.Minute}, 50_000, 25 * time.Second},   // the budget holds
		{Config{AnnounceBudget: 3}, 1, base},                       // 334 ms < base
		{Config{AnnounceBudget: 3}, 10, 3334 * time.Millisecond},   // rounded up
		{Config{AnnounceBudget: -1}, 100_000, base},                // no budget
		{Config{PeerTTL: 600 * time.Millisecond}, 100_000, base},   // never below base
		{Config{AnnounceBudget: 100, PeerTTL: time.Hour}, 1, base}, // 10 ms < base
		{Config{AnnounceBudget: 100, PeerTTL: time.Hour}, 1000, 10 * time.Second},
	} {
		if got := AnnounceInterval(c.cfg, base, c.members); got != c.want {
			t.Errorf("AnnounceInterval(budget %d, ttl %v, %d members) = %v, want %v", c.cfg.AnnounceBudget, c.cfg.PeerTTL, c.members, got, c.want)
		}
	}
	prev := time.Duration(0)
	for m := 0; m <= 20_000; m += 7 {
		got := AnnounceInterval(Config{}, base, m)
		if got < base || got < prev || got > DefaultPeerTTL/2 {
			t.Fatalf("%d members: %v after %v", m, got, prev)
		}
		prev = got
	}
}

// Tracker.AnnounceInterval counts root's members, those without chunks
// too, until they leave.
func TestTrackerAnnounceInterval(t *testing.T) {
	tr, _ := newTracker(t, Config{AnnounceBudget: 2})
	base := 100 * time.Millisecond
	if got := tr.AnnounceInterval(root, base); got != base {
		t.Fatalf("no swarm: %v, want %v", got, base)
	}
	ids := register(t, tr, 5)
	for i, id := range ids {
		have := core.NewBitfield(4)
		if i%2 == 0 {
			have.Set(i % 4)
		}
		if err := tr.Announce(id, root, 4, have); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := tr.AnnounceInterval(root, base), 2500*time.Millisecond; got != want {
		t.Fatalf("5 members at 2 per s: %v, want %v", got, want)
	}
	tr.Leave(ids[0], root)
	tr.Leave(ids[1], root)
	if got, want := tr.AnnounceInterval(root, base), 1500*time.Millisecond; got != want {
		t.Fatalf("3 members at 2 per s: %v, want %v", got, want)
	}
	if got := tr.AnnounceInterval(core.HashBytes([]byte("other")), base); got != base {
		t.Fatalf("another object: %v, want %v", got, base)
	}
}

// Hand-outs rank by location: the requester's PID first, then the others
// by cost; with SamePID, only the requester's PID (none for a requester of
// unknown location).
func TestHandoutLocality(t *testing.T) {
	cost := map[[2]string]int{{"a", "b"}: 5, {"a", "c"}: 10, {"a", ""}: 100}
	tr, _ := newTracker(t, Config{})
	tr.policy = Locality{Inner: tr.policy, Cost: func(x, y string) int { return cost[[2]string{x, y}] }}
	pidOf := map[string]string{}
	var ids []string
	for i, pid := range []string{"a", "c", "b", "", "a", "c", "b", "a"} {
		id, _, err := tr.RegisterAt(fmt.Sprintf("127.0.0.1:%d", 7000+i), "", pid, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		pidOf[id] = pid
		ids = append(ids, id)
		if err := tr.Announce(id, root, 4, bf(4, i%4)); err != nil {
			t.Fatal(err)
		}
	}
	asker := ids[0] // in "a"
	var got []string
	for _, c := range tr.Handout(root, asker, 0) {
		got = append(got, pidOf[c.PeerID])
		if c.PID != pidOf[c.PeerID] {
			t.Errorf("candidate %s carries PID %q, registered in %q", c.PeerID, c.PID, pidOf[c.PeerID])
		}
	}
	if want := []string{"a", "a", "b", "b", "c", "c", ""}; !slices.Equal(got, want) {
		t.Errorf("hand-out by PID %q, want %q", got, want)
	}
	same := tr.HandoutWith(root, asker, 0, HandoutOptions{SamePID: true})
	if len(same) != 2 || pidOf[same[0].PeerID] != "a" || pidOf[same[1].PeerID] != "a" {
		t.Errorf("same-PID hand-out: %d peers", len(same))
	}
	if n := len(tr.HandoutWith(root, ids[3], 0, HandoutOptions{SamePID: true})); n != 0 {
		t.Errorf("a requester of unknown location got %d same-PID peers", n)
	}
	if _, _, err := tr.RegisterAt("127.0.0.1:1", "", strings.Repeat("x", MaxNameLen+1), 0); err == nil {
		t.Error("oversized PID accepted")
	}
}

// TestHandoutManaged: a managed cache comes first among the peers of its
// location, is considered even when a large swarm is sampled, and is the
// only peer of another location CrossManagedOnly lets through.
func TestHandoutManaged(t *testing.T) {
	tr, _ := newTracker(t, Config{HandoutSample: 4})
	tr.policy = Locality{Inner: tr.policy, Cost: func(x, y string) int { return 10 }}
	pidOf := map[string]string{}
	var ids []string
	for i := range 40 {
		pid := []string{"a", "b"}[i%2]
		id, _, err := tr.RegisterAt(fmt.Sprintf("127.0.0.1:%d", 7000+i), "", pid, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		pidOf[id] = pid
		ids = append(ids, id)
		if err := tr.Announce(id, root, 4, bf(4, i%4)); err != nil {
			t.Fatal(err)
		}
	}
	cacheA, cacheB := ids[38], ids[39] // in a and b
	for _, id := range []string{cacheA, cacheB} {
		if err := tr.SetManaged(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.SetManaged("nobody"); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("SetManaged of an unknown peer: %v", err)
	}
	if _, known, managed := tr.Describe(cacheA); !known || !managed {
		t.Errorf("Describe(cache) = known %v, managed %v", known, managed)
	}
	asker := ids[0] // in a
	for range 20 {  // sampled: 4 of 39, and the caches always
		got := tr.Handout(root, asker, 0)
		if len(got) < 2 || got[0].PeerID != cacheA || !got[0].Managed {
			t.Fatalf("hand-out %v: want cache %s first", got, cacheA)
		}
		for i, c := range got[1:] {
			if c.PID == "a" && i > 0 && got[i].PID != "a" {
				t.Fatalf("peer of a after one of b: %v", got)
			}
		}
		if !slices.ContainsFunc(got, func(c Candidate) bool { return c.PeerID == cacheB }) {
			t.Fatalf("sampled hand-out lacks the other location's cache: %v", got)
		}
	}
	only := tr.HandoutWith(root, asker, 0, HandoutOptions{CrossManagedOnly: true})
	for _, c := range only {
		if c.PID != "a" && c.PeerID != cacheB {
			t.Errorf("managed-only hand-out has end-user peer %s of %s", c.PeerID, c.PID)
		}
	}
	if !slices.ContainsFunc(only, func(c Candidate) bool { return c.PeerID == cacheB }) {
		t.Errorf("managed-only hand-out lacks the other location's cache")
	}
	if n := len(tr.HandoutWith(root, asker, 0, HandoutOptions{SamePID: true})); n == 0 {
		t.Error("same-PID hand-out empty")
	} else {
		for _, c := range tr.HandoutWith(root, asker, 0, HandoutOptions{SamePID: true}) {
			if c.PID != "a" {
				t.Errorf("same-PID hand-out has %s of %s", c.PeerID, c.PID)
			}
		}
	}
	if !tr.Touch(cacheA) || tr.Touch("nobody") {
		t.Error("Touch")
	}
}

// TestReportUnresponsive: a peer that distinct members of the swarm report
// unresponsive is left out of hand-outs at once and for SuspendFor; one
// reporter alone, however often it reports, reports older than PeerTTL,
// reports by non-members and by banned peers never suspend anyone.
func TestReportUnresponsive(t *testing.T) {
	tr, clk := newTracker(t, Config{PeerTTL: 10 * time.Second, SuspendFor: 30 * time.Second})
	p := register(t, tr, 6)
	gone, r1, r2, asker, outsider, liar := p[0], p[1], p[2], p[3], p[4], p[5]
	for _, id := range []string{gone, r1, r2, asker, liar} {
		if err := tr.Announce(id, root, 2, bf(2, 0)); err != nil {
			t.Fatal(err)
		}
	}
	handedOut := func(id string) bool { return slices.Contains(ids(tr.Handout(root, asker, 0)), id) }
	if err := tr.ReportUnresponsive(r1, r1, root); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("self-report: err = %v", err)
	}
	if err := tr.ReportUnresponsive(r1, "nobody", root); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("report of an unknown peer: err = %v", err)
	}
	if err := tr.ReportUnresponsive("nobody", gone, root); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("report by an unknown peer: err = %v", err)
	}

	// One reporter, many times: still handed out.
	for range 5 {
		if err := tr.ReportUnresponsive(r1, gone, root); err != nil {
			t.Fatal(err)
		}
	}
	// A registered peer outside the swarm does not count either.
	tr.ReportUnresponsive(outsider, gone, root)
	if tr.IsSuspended(gone) || !handedOut(gone) {
		t.Fatal("suspended on one member's word")
	}
	// A second reporter, but after the first one's report went stale.
	clk.Advance(11 * time.Second)
	for _, id := range []string{gone, r1, r2, asker, liar} {
		tr.Announce(id, root, 2, bf(2, 0))
	}
	tr.ReportUnresponsive(r2, gone, root)
	if tr.IsSuspended(gone) {
		t.Fatal("suspended by two reports PeerTTL apart")
	}
	// Two distinct members within PeerTTL: out of hand-outs at once.
	tr.ReportUnresponsive(r1, gone, root)
	if !tr.IsSuspended(gone) || handedOut(gone) {
		t.Fatal("not suspended after two distinct members reported it")
	}
	if s := tr.Stats(); s.Suspended != 1 || s.SuspensionsTotal != 1 || s.UnresponsiveSeen != 8 {
		t.Errorf("stats %+v", s)
	}
	// It may still announce (it is not banned), but stays out until
	// SuspendFor has passed; then it is handed out again.
	if err := tr.Announce(gone, root, 2, bf(2, 0, 1)); err != nil {
		t.Fatalf("suspended peer's announce: %v", err)
	}
	clk.Advance(29 * time.Second)
	for _, id := range []string{gone, r1, r2, asker, liar} {
		tr.Announce(id, root, 2, bf(2, 0))
	}
	if handedOut(gone) {
		t.Fatal("handed out before SuspendFor passed")
	}
	clk.Advance(2 * time.Second)
	if !handedOut(gone) || tr.IsSuspended(gone) {
		t.Fatal("still left out after SuspendFor")
	}

	// A banned peer's reports do not count.
	tr.Report(r1, asker, root, 0)
	tr.Report(r2, asker, root, 0)
	if !tr.IsBanned(asker) {
		t.Fatal("not banned")
	}
	tr.ReportUnresponsive(asker, liar, root)
	tr.ReportUnresponsive(r1, liar, root)
	if tr.IsSuspended(liar) {
		t.Fatal("a banned peer's report counted")
	}
	tr.ReportUnresponsive(r2, liar, root)
	if !tr.IsSuspended(liar) {
		t.Fatal("not suspended after two members in good standing reported it")
	}
	// The per-peer reporter set is bounded by the threshold.
	tr.mu.Lock()
	for _, pr := range tr.peers {
		if len(pr.unresponsive) >= tr.cfg.UnresponsiveThreshold {
			t.Errorf("peer %s keeps %d reporters", pr.id, len(pr.unresponsive))
		}
	}
	tr.mu.Unlock()
}
