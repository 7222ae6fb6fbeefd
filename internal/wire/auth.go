package wire

// Proofs of a peer's identity key: on registration with an edge, and on
// every chunk request to another peer (with the ticket the edge issued).

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// AuthScheme is the Authorization scheme of peer-to-peer chunk requests:
//
//	Authorization: EdgeswarmTicket ticket=<base64url>, time=<unix ms>, sig=<base64url>
//
// ticket is the requester's core.Ticket; sig is its identity key's
// ed25519 signature over the Host the request is for and time
// (ProofSigningBytes): a ticket seen by the peer it was shown to cannot be
// used by that peer, nor shown to another peer. A requester may reuse one
// proof for ProofReuse, so it signs about once per peer and period and the
// receiver checks each (ticket, proof) once.
const AuthScheme = "EdgeswarmTicket"

// Limits of the authentication messages.
const (
	// MaxAuthorizationLen bounds the Authorization header a peer parses.
	MaxAuthorizationLen = 1024
	// RequestSkew is how far a signed request's time may be from the
	// receiver's clock, either way. It bounds how long a captured proof
	// could be replayed (to the same receiver).
	RequestSkew = 5 * time.Minute
	// ProofReuse is how long a requester may reuse one proof for one peer.
	ProofReuse = 30 * time.Second
	maxHostLen = 512
)

// Errors of request authentication.
var (
	ErrNoTicket         = errors.New("no " + AuthScheme + " authorization")
	ErrBadAuthorization = errors.New("malformed " + AuthScheme + " authorization")
	ErrBadProof         = errors.New("request signature does not verify against the ticket's key")
	ErrRequestTime      = errors.New("request time is too far from the receiver's clock")
)

// ChunkAuth is a parsed chunk-request Authorization.
type ChunkAuth struct {
	Ticket []byte    // encoded core.Ticket, not yet verified
	Time   time.Time // when the requester signed, millisecond precision
	Sig    []byte    // ed25519, 64 bytes
}

// String renders the Authorization header value.
func (c ChunkAuth) String() string {
	return AuthScheme + " ticket=" + base64.RawURLEncoding.EncodeToString(c.Ticket) +
		", time=" + strconv.FormatInt(c.Time.UnixMilli(), 10) +
		", sig=" + base64.RawURLEncoding.EncodeToString(c.Sig)
}

// ProofSigningBytes is what a requester signs to show its ticket to the
// peer reached at host.
func ProofSigningBytes(host string, at time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("edgeswarm-peer-proof-v1\x00")
	putField(&b, strings.ToLower(host))
	putField(&b, strconv.FormatInt(at.UnixMilli(), 10))
	return b.Bytes()
}

// putField writes s with a 2-byte length, so no two field lists encode
// alike.
func putField(b *bytes.Buffer, s string) {
	n := min(len(s), 0xffff)
	b.WriteByte(byte(n >> 8))
	b.WriteByte(byte(n))
	b.WriteString(s[:n])
}

// NewChunkAuth returns ticket with a proof by key (the key the ticket
// names), made at now, for the peer reached at host.
func NewChunkAuth(ticket []byte, key ed25519.PrivateKey, host string, now time.Time) ChunkAuth {
	at := time.UnixMilli(now.UnixMilli())
	return ChunkAuth{Ticket: ticket, Time: at, Sig: ed25519.Sign(key, ProofSigningBytes(host, at))}
}

// RequestHost is the Host a request is sent with.
func RequestHost(req *http.Request) string {
	if req.Host != "" {
		return req.Host
	}
	return req.URL.Host
}

// SignChunkRequest sets req's Authorization to ticket with a fresh proof
// by key.
func SignChunkRequest(req *http.Request, ticket []byte, key ed25519.PrivateKey, now time.Time) {
	req.Header.Set("Authorization", NewChunkAuth(ticket, key, RequestHost(req), now).String())
}

// ParseChunkAuth parses an Authorization header value strictly: the
// scheme, then ticket, time and sig once each (in any order), nothing
// else, at most MaxAuthorizationLen bytes. An empty value is ErrNoTicket.
func ParseChunkAuth(v string) (ChunkAuth, error) {
	var c ChunkAuth
	if v == "" {
		return c, ErrNoTicket
	}
	if len(v) > MaxAuthorizationLen {
		return c, fmt.Errorf("%w: %d bytes, limit %d", ErrBadAuthorization, len(v), MaxAuthorizationLen)
	}
	scheme, params, ok := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, AuthScheme) {
		return c, fmt.Errorf("%w: scheme %q, want %s", ErrNoTicket, truncate(scheme, 40), AuthScheme)
	}
	if !ok {
		return c, fmt.Errorf("%w: no parameters", ErrBadAuthorization)
	}
	var seen [3]bool
	for _, p := range strings.Split(params, ",") {
		k, val, ok := strings.Cut(strings.Trim(p, " \t"), "=")
		if !ok || val == "" {
			return c, fmt.Errorf("%w: parameter %q is not name=value", ErrBadAuthorization, truncate(p, 40))
		}
		var i int
		var err error
		switch strings.ToLower(k) {
		case "ticket":
			i = 0
			c.Ticket, err = base64.RawURLEncoding.Strict().DecodeString(val)
			if err == nil && len(c.Ticket) > core.MaxTicketLen {
				err = fmt.Errorf("%d bytes, limit %d", len(c.Ticket), core.MaxTicketLen)
			}
		case "time":
			i = 1
			var ms int64
			if len(val) > 15 || strings.Trim(val, "0123456789") != "" {
				err = errors.New("want Unix milliseconds")
			} else if ms, err = strconv.ParseInt(val, 10, 64); err == nil {
				c.Time = time.UnixMilli(ms)
			}
		case "sig":
			i = 2
			c.Sig, err = base64.RawURLEncoding.Strict().DecodeString(val)
			if err == nil && len(c.Sig) != ed25519.SignatureSize {
				err = fmt.Errorf("%d bytes, want %d", len(c.Sig), ed25519.SignatureSize)
			}
		default:
			return c, fmt.Errorf("%w: unknown parameter %q", ErrBadAuthorization, truncate(k, 40))
		}
		if err != nil {
			return c, fmt.Errorf("%w: %s: %v", ErrBadAuthorization, k, err)
		}
		if seen[i] {
			return c, fmt.Errorf("%w: %s given twice", ErrBadAuthorization, k)
		}
		seen[i] = true
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return c, fmt.Errorf("%w: want ticket, time and sig", ErrBadAuthorization)
	}
	return c, nil
}

// CheckTime checks that c's proof time is within RequestSkew of now.
func (c ChunkAuth) CheckTime(now time.Time) error {
	if d := now.Sub(c.Time); d > RequestSkew || d < -RequestSkew {
		return fmt.Errorf("%w: off by %v (allowed ±%v): check the clocks", ErrRequestTime, d.Truncate(time.Second), RequestSkew)
	}
	return nil
}

// VerifyProof checks that c's proof is pub's signature for host and that
// its time is within RequestSkew of now.
func (c ChunkAuth) VerifyProof(pub ed25519.PublicKey, host string, now time.Time) error {
	if err := c.CheckTime(now); err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, ProofSigningBytes(host, c.Time), c.Sig) {
		return ErrBadProof
	}
	return nil
}

// RegisterSigningBytes is what a peer signs to register with the edge
// reached at host.
func RegisterSigningBytes(r RegisterRequest, host string) []byte {
	var b bytes.Buffer
	b.WriteString("edgeswarm-register-v1\x00")
	putField(&b, strings.ToLower(host))
	putField(&b, r.Addr)
	putField(&b, r.Name)
	putField(&b, strconv.FormatInt(r.UploadBps, 10))
	putField(&b, strconv.FormatInt(r.Time, 10))
	putField(&b, string(r.PublicKey))
	return b.Bytes()
}

// SignRegister fills r's PublicKey, Time and Signature: key's proof,
// made at now, that it registers with the edge reached at host (the host
// of the edge's URL, as the request's Host header carries it).
func SignRegister(r *RegisterRequest, key ed25519.PrivateKey, host string, now time.Time) {
	r.PublicKey = bytes.Clone(key.Public().(ed25519.PublicKey))
	r.Time = now.UnixMilli()
	r.Signature = ed25519.Sign(key, RegisterSigningBytes(*r, host))
}

// VerifyRegister checks r's proof of its key for the edge reached at
// host (the request's Host) at now, and returns the key and signing time.
// It does not know the peer's previous registrations: the caller refuses
// a time not later than the last one it accepted.
func VerifyRegister(r RegisterRequest, host string, now time.Time) (ed25519.PublicKey, time.Time, error) {
	switch {
	case len(r.PublicKey) == 0 && len(r.Signature) == 0:
		return nil, time.Time{}, fmt.Errorf("%w: register without public_key, time and signature: peers must prove their identity key", ErrNoTicket)
	case len(r.PublicKey) != ed25519.PublicKeySize:
		return nil, time.Time{}, fmt.Errorf("%w: public_key of %d bytes, want %d", ErrBadAuthorization, len(r.PublicKey), ed25519.PublicKeySize)
	case len(r.Signature) != ed25519.SignatureSize:
		return nil, time.Time{}, fmt.Errorf("%w: signature of %d bytes, want %d", ErrBadAuthorization, len(r.Signature), ed25519.SignatureSize)
	case len(host) > maxHostLen:
		return nil, time.Time{}, fmt.Errorf("%w: host of %d bytes", ErrBadAuthorization, len(host))
	}
	at := time.UnixMilli(r.Time)
	if d := now.Sub(at); r.Time <= 0 || d > RequestSkew || d < -RequestSkew {
		return nil, time.Time{}, fmt.Errorf("%w: register time off by %v (allowed ±%v): check the peer's clock", ErrRequestTime, d.Truncate(time.Second), RequestSkew)
	}
	pub := ed25519.PublicKey(bytes.Clone(r.PublicKey))
	if !ed25519.Verify(pub, RegisterSigningBytes(r, host), r.Signature) {
		return nil, time.Time{}, fmt.Errorf("%w (register for host %q)", ErrBadProof, truncate(host, 80))
	}
	return pub, at, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
