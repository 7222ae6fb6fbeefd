package core

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var ticketT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testTicket(t testing.TB, lifetime time.Duration) ([]byte, ed25519.PublicKey) {
	t.Helper()
	pub := testKey(9).Public().(ed25519.PublicKey)
	enc, err := IssueTicket(testKey(1), PeerIDOf(pub), pub, ticketT0, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return enc, pub
}

func TestTicketGolden(t *testing.T) {
	enc, pub := testTicket(t, 10*time.Minute)
	golden := filepath.Join("testdata", "ticket_v1.golden.hex")
	got := hex.Dump(enc)
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Fatalf("encoding changed; diff against %s:\n%s", golden, got)
	}
	ring := NewKeyRing(testKey(1).Public().(ed25519.PublicKey))
	tk, err := ParseTicket(enc, ring, ticketT0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if tk.PeerID != PeerIDOf(pub) || !tk.PublicKey.Equal(pub) || !tk.Issued.Equal(ticketT0) || !tk.Expires.Equal(ticketT0.Add(10*time.Minute)) {
		t.Fatalf("decoded %+v", tk)
	}
	if len(enc) > MaxTicketLen {
		t.Fatalf("%d bytes, more than MaxTicketLen %d", len(enc), MaxTicketLen)
	}
}

func TestPeerIDOf(t *testing.T) {
	a, b := testKey(2).Public().(ed25519.PublicKey), testKey(3).Public().(ed25519.PublicKey)
	if PeerIDOf(a) == PeerIDOf(b) || PeerIDOf(a) != PeerIDOf(bytes.Clone(a)) {
		t.Fatal("peer id does not follow the key")
	}
	if id := PeerIDOf(a); len(id) != 32 || !ValidPeerID(id) {
		t.Fatalf("peer id %q", id)
	}
	for _, bad := range []string{"", strings.Repeat("a", MaxPeerIDLen+1), "a b", "a/b", "é", "a\x00"} {
		if ValidPeerID(bad) {
			t.Errorf("ValidPeerID(%q) = true", bad)
		}
	}
}

// Every way a ticket can be wrong is refused with the error that says so.
func TestTicketVerifyRefuses(t *testing.T) {
	ring := NewKeyRing(testKey(1).Public().(ed25519.PublicKey))
	enc, pub := testTicket(t, 10*time.Minute)
	otherTier, err := IssueTicket(testKey(4), PeerIDOf(pub), pub, ticketT0, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := ticketT0.Add(time.Minute)
	tests := map[string]struct {
		data []byte
		now  time.Time
		want error
	}{
		"valid":                   {enc, now, nil},
		"valid within the skew":   {enc, ticketT0.Add(10*time.Minute + TicketSkew - time.Second), nil},
		"expired past the skew":   {enc, ticketT0.Add(10*time.Minute + TicketSkew), ErrTicketExpired},
		"signed by another tier":  {otherTier, now, ErrTicketUnknownKey},
		"empty":                   {nil, now, ErrTicketMalformed},
		"magic only":              {[]byte("EST1"), now, ErrTicketMalformed},
		"other version":           {append([]byte("EST2"), enc[4:]...), now, ErrTicketMalformed},
		"truncated":               {enc[:len(enc)-1], now, ErrTicketMalformed},
		"trailing byte":           {append(bytes.Clone(enc), 0), now, ErrTicketMalformed},
		"longer than the maximum": {make([]byte, MaxTicketLen+1), now, ErrTicketMalformed},
	}
	// Flipping any bit of any byte breaks the ticket: the signature covers
	// everything before it, and the signature itself must verify.
	for i := range enc {
		b := bytes.Clone(enc)
		b[i] ^= 0x01
		tests["flipped byte "+hex.EncodeToString([]byte{byte(i)})] = struct {
			data []byte
			now  time.Time
			want error
		}{b, now, errAny}
	}
	for name, tc := range tests {
		_, err := ParseTicket(tc.data, ring, tc.now)
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want == errAny && err == nil:
			t.Errorf("%s: accepted", name)
		case tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

var errAny = errors.New("any error")

func TestIssueTicketRefusesBadShapes(t *testing.T) {
	pub := testKey(9).Public().(ed25519.PublicKey)
	for name, f := range map[string]func() ([]byte, error){
		"bad peer id":   func() ([]byte, error) { return IssueTicket(testKey(1), "a b", pub, ticketT0, time.Minute) },
		"short key":     func() ([]byte, error) { return IssueTicket(testKey(1), "p", pub[:31], ticketT0, time.Minute) },
		"zero lifetime": func() ([]byte, error) { return IssueTicket(testKey(1), "p", pub, ticketT0, 0) },
		"too long a life": func() ([]byte, error) {
			return IssueTicket(testKey(1), "p", pub, ticketT0, MaxTicketLifetime+time.Second)
		},
		"before 1970": func() ([]byte, error) { return IssueTicket(testKey(1), "p", pub, time.Unix(-10, 0), time.Minute) },
	} {
		if b, err := f(); err == nil {
			t.Errorf("%s: issued %x", name, b)
		}
	}
}

// FuzzTicket: the parser never panics, takes nothing longer than
// MaxTicketLen, and whatever it takes re-encodes to the same bytes; only
// the ticket the test key signed verifies under it.
func FuzzTicket(f *testing.F) {
	enc, _ := testTicket(f, 10*time.Minute)
	f.Add(enc)
	f.Add([]byte("EST1"))
	f.Add(append([]byte("EST1\x40"), make([]byte, 200)...))
	f.Add(enc[:len(enc)-64])
	ring := NewKeyRing(testKey(1).Public().(ed25519.PublicKey))
	f.Fuzz(func(t *testing.T, b []byte) {
		var tk Ticket
		if err := tk.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrTicketMalformed) {
				t.Fatalf("error %v does not wrap ErrTicketMalformed", err)
			}
			return
		}
		if len(b) > MaxTicketLen {
			t.Fatalf("took %d bytes", len(b))
		}
		re, err := tk.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded ticket does not re-encode: %v", err)
		}
		if !bytes.Equal(re, b) {
			t.Fatal("decode/encode not stable")
		}
		if tk.Verify(ring, ticketT0) == nil && !bytes.Equal(b, enc) {
			t.Fatal("a different ticket verified under the test key")
		}
	})
}
