package core

// Peer identities and the tickets edges issue to them.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Limits and clock allowances of tickets.
const (
	// MaxPeerIDLen bounds a peer ID, and MaxKeyIDLen a signing key's ID,
	// inside a ticket.
	MaxPeerIDLen = 64
	MaxKeyIDLen  = 64
	// MaxTicketLifetime bounds expiry − issue time of a ticket a parser
	// accepts, so that no ticket outlives a revocation for long.
	MaxTicketLifetime = 24 * time.Hour
	// TicketSkew is how far past its expiry a ticket is still accepted:
	// the allowance for the clocks of the edge and the serving peer.
	TicketSkew = 30 * time.Second
	// MaxTicketLen is the longest encoded ticket.
	MaxTicketLen = len("EST1") + 1 + MaxPeerIDLen + ed25519.PublicKeySize + 8 + 8 + 1 + MaxKeyIDLen + ed25519.SignatureSize
)

// Errors of ticket verification. A ticket that fails must not be honoured.
var (
	ErrTicketMalformed  = errors.New("ticket is malformed")
	ErrTicketSignature  = errors.New("ticket signature does not verify")
	ErrTicketUnknownKey = errors.New("ticket signed by an unknown key")
	ErrTicketExpired    = errors.New("ticket has expired")
)

// PeerIDOf names a peer by its ed25519 identity key: the hex of the first
// 16 bytes of SHA-256 over a domain prefix and the key. An edge gives a
// registering peer this ID, so a peer ID stands for one key and a revoked
// ID cannot come back under the same key.
func PeerIDOf(pub ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte("edgeswarm-peer-id-v1\x00"))
	h.Write(pub)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ValidPeerID reports whether s can be a peer ID: 1 to MaxPeerIDLen
// letters, digits, '-', '_' or '.'. (Edges derive IDs with PeerIDOf; the
// wider alphabet keeps IDs of other issuers usable.)
func ValidPeerID(s string) bool { return validLabel(s, MaxPeerIDLen) }

func validLabel(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Ticket is an edge's signed statement that the peer PeerID holds the
// identity key PublicKey until Expires. A peer shows its ticket on every
// chunk request to another peer, with a signature by that key over the
// request (internal/wire), and the serving peer checks it against the
// edge tier's KeyRing, its clock and its revocation list.
type Ticket struct {
	PeerID    string
	PublicKey ed25519.PublicKey
	Issued    time.Time // whole seconds
	Expires   time.Time // whole seconds, after Issued
	KeyID     string    // the edge-tier key that signed it (KeyIDOf)
	Signature []byte    // ed25519 over SigningBytes()
}

// ticketMagic starts every encoded ticket; the digit is the version.
var ticketMagic = []byte("EST1")

// IssueTicket returns the encoding of a ticket for peerID and pub, valid
// from issued for lifetime, signed with priv (an edge-tier key).
func IssueTicket(priv ed25519.PrivateKey, peerID string, pub ed25519.PublicKey, issued time.Time, lifetime time.Duration) ([]byte, error) {
	t := Ticket{
		PeerID:    peerID,
		PublicKey: pub,
		Issued:    issued.Truncate(time.Second),
		KeyID:     KeyIDOf(priv.Public().(ed25519.PublicKey)),
	}
	t.Expires = t.Issued.Add(lifetime.Truncate(time.Second))
	body, err := t.SigningBytes()
	if err != nil {
		return nil, err
	}
	t.Signature = ed25519.Sign(priv, body)
	return t.MarshalBinary()
}

func (t *Ticket) checkShape() error {
	life := t.Expires.Sub(t.Issued)
	switch {
	case !ValidPeerID(t.PeerID):
		return fmt.Errorf("%w: peer id %q: want 1 to %d letters, digits, '-', '_' or '.'", ErrTicketMalformed, truncate(t.PeerID, 80), MaxPeerIDLen)
	case len(t.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: public key of %d bytes, want %d", ErrTicketMalformed, len(t.PublicKey), ed25519.PublicKeySize)
	case !validLabel(t.KeyID, MaxKeyIDLen):
		return fmt.Errorf("%w: key id %q", ErrTicketMalformed, truncate(t.KeyID, 80))
	case t.Issued.Unix() < 0 || t.Issued.Nanosecond() != 0 || t.Expires.Nanosecond() != 0:
		return fmt.Errorf("%w: issue time %v: want whole seconds after 1970", ErrTicketMalformed, t.Issued)
	case life <= 0 || life > MaxTicketLifetime:
		return fmt.Errorf("%w: lifetime %v outside (0, %v]", ErrTicketMalformed, life, MaxTicketLifetime)
	}
	return nil
}

// SigningBytes returns the stable encoding of everything but the
// signature.
func (t *Ticket) SigningBytes() ([]byte, error) {
	if err := t.checkShape(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(MaxTicketLen)
	b.Write(ticketMagic)
	putUint(&b, uint64(len(t.PeerID)), 1)
	b.WriteString(t.PeerID)
	b.Write(t.PublicKey)
	putUint(&b, uint64(t.Issued.Unix()), 8)
	putUint(&b, uint64(t.Expires.Unix()), 8)
	putUint(&b, uint64(len(t.KeyID)), 1)
	b.WriteString(t.KeyID)
	return b.Bytes(), nil
}

// MarshalBinary encodes the ticket: SigningBytes followed by the 64-byte
// signature. The encoding is stable (golden-tested):
//
//	"EST1" | len u8 | peer id | public key [32] | issued u64 | expires u64 |
//	len u8 | key id | signature [64]          (integers big-endian, Unix seconds)
func (t *Ticket) MarshalBinary() ([]byte, error) {
	body, err := t.SigningBytes()
	if err != nil {
		return nil, err
	}
	if len(t.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrTicketMalformed, len(t.Signature))
	}
	return append(body, t.Signature...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, strictly: no field out
// of bounds, no trailing byte. It never checks the signature or the
// clock: call Verify before trusting the ticket.
func (t *Ticket) UnmarshalBinary(data []byte) error {
	if len(data) > MaxTicketLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTicketMalformed, len(data), MaxTicketLen)
	}
	r := &reader{b: data}
	if !bytes.Equal(r.next(len(ticketMagic)), ticketMagic) {
		return fmt.Errorf("%w: bad magic (not an edgeswarm v1 ticket)", ErrTicketMalformed)
	}
	var out Ticket
	out.PeerID = string(r.next(int(r.uint(1))))
	out.PublicKey = bytes.Clone(r.next(ed25519.PublicKeySize))
	issued, expires := r.uint(8), r.uint(8)
	out.KeyID = string(r.next(int(r.uint(1))))
	out.Signature = bytes.Clone(r.next(ed25519.SignatureSize))
	if r.err != nil {
		return fmt.Errorf("%w: %w", ErrTicketMalformed, r.err)
	}
	if r.off != len(data) {
		return fmt.Errorf("%w: %d trailing bytes", ErrTicketMalformed, len(data)-r.off)
	}
	// Unix seconds past year 9999 are refused before time.Unix sees them.
	const maxUnix = 253402300799
	if issued > maxUnix || expires > maxUnix {
		return fmt.Errorf("%w: time out of range", ErrTicketMalformed)
	}
	out.Issued, out.Expires = time.Unix(int64(issued), 0).UTC(), time.Unix(int64(expires), 0).UTC()
	if err := out.checkShape(); err != nil {
		return err
	}
	*t = out
	return nil
}

// Verify checks the ticket's shape, its signature against ring and that
// it has not expired at now (TicketSkew allowed).
func (t *Ticket) Verify(ring KeyRing, now time.Time) error {
	body, err := t.SigningBytes()
	if err != nil {
		return err
	}
	pub, ok := ring[t.KeyID]
	if !ok {
		return fmt.Errorf("%w: key id %q", ErrTicketUnknownKey, truncate(t.KeyID, 80))
	}
	if len(t.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, body, t.Signature) {
		return ErrTicketSignature
	}
	if !now.Before(t.Expires.Add(TicketSkew)) {
		return fmt.Errorf("%w: at %s, %v ago", ErrTicketExpired, t.Expires.Format(time.RFC3339), now.Sub(t.Expires).Truncate(time.Second))
	}
	return nil
}

// ParseTicket decodes data and verifies it against ring at now.
func ParseTicket(data []byte, ring KeyRing, now time.Time) (*Ticket, error) {
	t := new(Ticket)
	if err := t.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	if err := t.Verify(ring, now); err != nil {
		return nil, err
	}
	return t, nil
}
