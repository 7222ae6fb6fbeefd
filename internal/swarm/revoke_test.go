package swarm

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

func identity(seed byte) (string, ed25519.PublicKey) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	return core.PeerIDOf(pub), pub
}

func registerKeyed(t *testing.T, tr *Tracker, seed byte, addr string, at time.Time) (string, string) {
	t.Helper()
	id, pub := identity(seed)
	tok, err := tr.RegisterPeer(Registration{ID: id, Key: pub, Addr: addr, SignedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return id, tok
}

// A peer's ID stands for its key: registering again with the same key is
// the same peer (new token, swarms left), a replayed or older registration
// is refused, and the ID cannot be taken with another key.
func TestRegisterPeerIdentity(t *testing.T) {
	tr, clk := newTracker(t, Config{})
	t0 := clk.Now()
	id, tok := registerKeyed(t, tr, 1, "127.0.0.1:7000", t0)
	other, _ := registerKeyed(t, tr, 2, "127.0.0.1:7001", t0)
	if err := tr.Announce(id, root, 2, bf(2, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if got := ids(tr.Handout(root, other, 0)); !slices.Equal(got, []string{id}) {
		t.Fatalf("hand-out %v", got)
	}
	if key, ok := tr.PublicKey(id); !ok || !key.Equal(func() ed25519.PublicKey { _, p := identity(1); return p }()) {
		t.Fatal("identity key not kept")
	}

	_, pub := identity(1)
	if _, err := tr.RegisterPeer(Registration{ID: id, Key: pub, Addr: "127.0.0.1:7000", SignedAt: t0}); !errors.Is(err, ErrStaleRegistration) {
		t.Fatalf("replayed registration: %v, want ErrStaleRegistration", err)
	}
	if _, err := tr.RegisterPeer(Registration{ID: id, Key: pub, SignedAt: t0.Add(-time.Second)}); !errors.Is(err, ErrStaleRegistration) {
		t.Fatalf("older registration: %v, want ErrStaleRegistration", err)
	}
	_, pub2 := identity(2)
	if _, err := tr.RegisterPeer(Registration{ID: id, Key: pub2, SignedAt: t0.Add(time.Second)}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("id with another key: %v, want ErrInvalidArgument", err)
	}
	if _, err := tr.RegisterPeer(Registration{ID: "a b", Key: pub, SignedAt: t0.Add(time.Second)}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad id: %v", err)
	}

	tok2, err := tr.RegisterPeer(Registration{ID: id, Key: pub, Addr: "127.0.0.1:7100", SignedAt: t0.Add(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Authenticate(id, tok) || !tr.Authenticate(id, tok2) {
		t.Fatal("re-registration did not replace the token")
	}
	if got := tr.Handout(root, other, 0); len(got) != 0 {
		t.Fatalf("re-registered peer still handed out before announcing again: %v", ids(got))
	}
	if s := tr.Stats(); s.Peers != 2 || s.Registrations != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// An operator's revocation: out of every swarm, announces and
// registrations refused, listed for peers newest first; it lapses at
// Until, and can be lifted earlier.
func TestRevoke(t *testing.T) {
	tr, clk := newTracker(t, Config{RevocationTTL: time.Hour})
	t0 := clk.Now()
	bad, _ := registerKeyed(t, tr, 1, "127.0.0.1:7000", t0)
	asker, _ := registerKeyed(t, tr, 2, "127.0.0.1:7001", t0)
	if err := tr.Announce(bad, root, 2, bf(2, 0)); err != nil {
		t.Fatal(err)
	}
	r, err := tr.Revoke(Revocation{PeerID: bad, Reason: "abuse"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.At.Equal(t0) || !r.Until.Equal(t0.Add(time.Hour)) || r.Ban {
		t.Fatalf("stored %+v", r)
	}
	if got := tr.Handout(root, asker, 0); len(got) != 0 {
		t.Fatal("revoked peer handed out")
	}
	if err := tr.Announce(bad, root, 2, bf(2, 0)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked peer's announce: %v, want ErrRevoked", err)
	}
	_, pub := identity(1)
	if _, err := tr.RegisterPeer(Registration{ID: bad, Key: pub, SignedAt: t0.Add(time.Second)}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked peer's registration: %v, want ErrRevoked", err)
	}
	// Revoking an identity that never registered keeps it out.
	never, neverKey := identity(3)
	clk.Advance(time.Minute)
	if _, err := tr.Revoke(Revocation{PeerID: never}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.RegisterPeer(Registration{ID: never, Key: neverKey, SignedAt: clk.Now()}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("pre-revoked identity registered: %v", err)
	}
	if got := revIDs(tr.RevokedSince(time.Time{}, 10)); !slices.Equal(got, []string{never, bad}) {
		t.Fatalf("RevokedSince: %v, want newest first", got)
	}
	if got := revIDs(tr.RevokedSince(t0.Add(time.Second), 10)); !slices.Equal(got, []string{never}) {
		t.Fatalf("RevokedSince(t0+1s): %v", got)
	}
	if got := revIDs(tr.RevokedSince(time.Time{}, 1)); !slices.Equal(got, []string{never}) {
		t.Fatalf("RevokedSince max 1: %v", got)
	}
	if s := tr.Stats(); s.Revoked != 2 {
		t.Fatalf("stats %+v", s)
	}

	// Lifted: the identity registers and is handed out again.
	if !tr.Unrevoke(never) || tr.Unrevoke(never) {
		t.Fatal("Unrevoke reports wrong")
	}
	if _, err := tr.RegisterPeer(Registration{ID: never, Key: neverKey, SignedAt: clk.Now()}); err != nil {
		t.Fatalf("lifted identity refused: %v", err)
	}
	// Lapsed: bad may register again after an hour.
	clk.Advance(time.Hour)
	tr.Sweep()
	if got := tr.Revocations(); len(got) != 0 {
		t.Fatalf("revocations after they lapsed: %+v", got)
	}
	if _, err := tr.RegisterPeer(Registration{ID: bad, Key: pub, SignedAt: clk.Now()}); err != nil {
		t.Fatalf("lapsed revocation still refuses: %v", err)
	}
	if err := tr.Announce(bad, root, 2, bf(2, 0)); err != nil {
		t.Fatalf("announce after the revocation lapsed: %v", err)
	}

	for name, r := range map[string]Revocation{
		"bad id":         {PeerID: "a/b"},
		"long reason":    {PeerID: "p", Reason: string(make([]byte, MaxReasonLen+1))},
		"already lapsed": {PeerID: "p", Until: clk.Now()},
	} {
		if _, err := tr.Revoke(r); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}

// A ban for bad chunks is a revocation too: listed for peers, and the
// banned key cannot register again until it lapses with RegistrationTTL.
func TestBanIsRevocation(t *testing.T) {
	tr, clk := newTracker(t, Config{})
	t0 := clk.Now()
	bad, _ := registerKeyed(t, tr, 1, "127.0.0.1:7000", t0)
	r1, _ := registerKeyed(t, tr, 2, "127.0.0.1:7001", t0)
	r2, _ := registerKeyed(t, tr, 3, "127.0.0.1:7002", t0)
	tr.Report(r1, bad, root, 0)
	tr.Report(r2, bad, root, 0)
	got := tr.RevokedSince(time.Time{}, 10)
	if len(got) != 1 || got[0].PeerID != bad || !got[0].Ban || !got[0].Until.Equal(t0.Add(tr.Config().RegistrationTTL)) {
		t.Fatalf("revocations after a ban: %+v", got)
	}
	_, pub := identity(1)
	if _, err := tr.RegisterPeer(Registration{ID: bad, Key: pub, Addr: "127.0.0.2:9", SignedAt: t0.Add(time.Second)}); !errors.Is(err, ErrBanned) {
		t.Fatalf("banned key registered from another address: %v", err)
	}
	// Lifting a ban unbans the peer.
	if !tr.Unrevoke(bad) || tr.IsBanned(bad) {
		t.Fatal("ban not lifted")
	}
	if err := tr.Announce(bad, root, 1, bf(1, 0)); err != nil {
		t.Fatalf("announce after the ban was lifted: %v", err)
	}
}

// The revocation list is bounded by MaxRevoked, and its time index by
// twice that however often entries are replaced or lifted.
func TestRevocationsBounded(t *testing.T) {
	tr, clk := newTracker(t, Config{MaxRevoked: 3, RevocationTTL: time.Hour})
	for i := range 3 {
		if _, err := tr.Revoke(Revocation{PeerID: fmt.Sprint("p", i)}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	if _, err := tr.Revoke(Revocation{PeerID: "p3"}); !errors.Is(err, ErrTooManyRevoked) {
		t.Fatalf("fourth revocation: %v, want ErrTooManyRevoked", err)
	}
	if _, err := tr.Revoke(Revocation{PeerID: "p1", Reason: "again"}); err != nil {
		t.Fatalf("revoking a listed identity again: %v", err)
	}
	clk.Advance(58 * time.Minute) // p0 lapses (revoked at 0, now 61 min)
	if _, err := tr.Revoke(Revocation{PeerID: "p3"}); err != nil {
		t.Fatalf("revocation after one lapsed: %v", err)
	}
	for i := range 1000 {
		clk.Advance(time.Millisecond)
		if _, err := tr.Revoke(Revocation{PeerID: "p3", Reason: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			tr.Unrevoke("p2")
		} else if _, err := tr.Revoke(Revocation{PeerID: "p2"}); err != nil {
			t.Fatal(err)
		}
	}
	tr.mu.Lock()
	n, order := len(tr.revoked), len(tr.revOrder)
	tr.mu.Unlock()
	if n > 3 || order > 2*3+64 {
		t.Fatalf("%d revocations, %d index entries", n, order)
	}
	got := tr.RevokedSince(time.Time{}, 10)
	if len(got) != n || got[0].PeerID != "p2" && got[0].PeerID != "p3" {
		t.Fatalf("RevokedSince after churn: %+v", got)
	}
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.PeerID] {
			t.Fatalf("%s listed twice", r.PeerID)
		}
		seen[r.PeerID] = true
	}
}

func revIDs(rs []Revocation) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.PeerID)
	}
	return out
}
