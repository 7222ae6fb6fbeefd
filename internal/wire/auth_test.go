package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

var authT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func authKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func signedChunkRequest(t *testing.T, key ed25519.PrivateKey, at time.Time) (*http.Request, ChunkAuth) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:7001"+ChunkPath(core.HashBytes([]byte("x")), 3), nil)
	if err != nil {
		t.Fatal(err)
	}
	SignChunkRequest(req, []byte("EST1 a ticket"), key, at)
	c, err := ParseChunkAuth(req.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	return req, c
}

func TestChunkAuthProof(t *testing.T) {
	key := authKey(1)
	pub := key.Public().(ed25519.PublicKey)
	req, c := signedChunkRequest(t, key, authT0)
	if string(c.Ticket) != "EST1 a ticket" || !c.Time.Equal(authT0) {
		t.Fatalf("parsed %+v", c)
	}
	host := req.URL.Host
	tests := map[string]struct {
		pub  ed25519.PublicKey
		host string
		now  time.Time
		want error
	}{
		"valid":                    {pub, host, authT0, nil},
		"host in another case":     {pub, strings.ToUpper(host), authT0, nil},
		"valid at the skew":        {pub, host, authT0.Add(RequestSkew), nil},
		"sent from the future":     {pub, host, authT0.Add(-RequestSkew), nil},
		"too old":                  {pub, host, authT0.Add(RequestSkew + time.Millisecond), ErrRequestTime},
		"too far ahead":            {pub, host, authT0.Add(-RequestSkew - time.Millisecond), ErrRequestTime},
		"another key's ticket":     {authKey(2).Public().(ed25519.PublicKey), host, authT0, ErrBadProof},
		"replayed to another peer": {pub, "127.0.0.1:7002", authT0, ErrBadProof},
		"short key":                {pub[:31], host, authT0, ErrBadProof},
	}
	for name, tc := range tests {
		err := c.VerifyProof(tc.pub, tc.host, tc.now)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// A flipped signature bit or a moved time fails too.
	bad := c
	bad.Sig = bytes.Clone(c.Sig)
	bad.Sig[10] ^= 1
	if err := bad.VerifyProof(pub, host, authT0); !errors.Is(err, ErrBadProof) {
		t.Errorf("flipped signature: %v", err)
	}
	bad = c
	bad.Time = c.Time.Add(time.Millisecond)
	if err := bad.VerifyProof(pub, host, authT0); !errors.Is(err, ErrBadProof) {
		t.Errorf("moved time: %v", err)
	}
}

func TestParseChunkAuthStrict(t *testing.T) {
	_, good := signedChunkRequest(t, authKey(1), authT0)
	v := good.String()
	_, params, _ := strings.Cut(v, " ")
	parts := strings.Split(params, ", ")
	for name, tc := range map[string]struct {
		v    string
		want error
	}{
		"empty":             {"", ErrNoTicket},
		"bearer":            {"Bearer abc", ErrNoTicket},
		"scheme only":       {AuthScheme, ErrBadAuthorization},
		"scheme in lower":   {strings.ToLower(AuthScheme) + " " + params, nil},
		"reordered":         {AuthScheme + " " + parts[2] + "," + parts[0] + ",\t" + parts[1], nil},
		"missing sig":       {AuthScheme + " " + parts[0] + ", " + parts[1], ErrBadAuthorization},
		"twice":             {v + ", " + parts[1], ErrBadAuthorization},
		"unknown parameter": {v + ", x=1", ErrBadAuthorization},
		"empty value":       {AuthScheme + " ticket=, " + parts[1] + ", " + parts[2], ErrBadAuthorization},
		"padded base64":     {AuthScheme + " " + parts[0] + "=, " + parts[1] + ", " + parts[2], ErrBadAuthorization},
		"std base64":        {AuthScheme + " ticket=ab+/, " + parts[1] + ", " + parts[2], ErrBadAuthorization},
		"negative time":     {AuthScheme + " " + parts[0] + ", time=-1, " + parts[2], ErrBadAuthorization},
		"huge time":         {AuthScheme + " " + parts[0] + ", time=9999999999999999999, " + parts[2], ErrBadAuthorization},
		"short sig":         {AuthScheme + " " + parts[0] + ", " + parts[1] + ", sig=AAAA", ErrBadAuthorization},
		"too long":          {AuthScheme + " ticket=" + strings.Repeat("A", MaxAuthorizationLen), ErrBadAuthorization},
		"long ticket":       {AuthScheme + " ticket=" + strings.Repeat("A", 4*core.MaxTicketLen/3+4) + ", " + parts[1] + ", " + parts[2], ErrBadAuthorization},
	} {
		_, err := ParseChunkAuth(tc.v)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// FuzzChunkAuth: the Authorization parser never panics, takes at most
// MaxAuthorizationLen bytes, and what it takes renders back to a value
// that parses to the same credential.
func FuzzChunkAuth(f *testing.F) {
	key := authKey(1)
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:7001/swarm/v1/chunk/x/1", nil)
	SignChunkRequest(req, []byte("EST1 ticket bytes"), key, authT0)
	f.Add(req.Header.Get("Authorization"))
	f.Add(AuthScheme + " ticket=QQ, time=1, sig=QQ")
	f.Add("Bearer x")
	f.Add(AuthScheme + " ,,,")
	f.Fuzz(func(t *testing.T, v string) {
		c, err := ParseChunkAuth(v)
		if err != nil {
			if !errors.Is(err, ErrNoTicket) && !errors.Is(err, ErrBadAuthorization) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(v) > MaxAuthorizationLen || len(c.Ticket) > core.MaxTicketLen || len(c.Sig) != ed25519.SignatureSize {
			t.Fatalf("took %d bytes, ticket %d, sig %d", len(v), len(c.Ticket), len(c.Sig))
		}
		back, err := ParseChunkAuth(c.String())
		if err != nil || !bytes.Equal(back.Ticket, c.Ticket) || !back.Time.Equal(c.Time) || !bytes.Equal(back.Sig, c.Sig) {
			t.Fatalf("round trip of %q: %+v, %v", v, back, err)
		}
	})
}

func TestRegisterProof(t *testing.T) {
	key := authKey(3)
	host := "edge.example:8080"
	sign := func(at time.Time) RegisterRequest {
		r := RegisterRequest{Addr: "10.0.0.2:7001", Name: "a", UploadBps: 1 << 20}
		SignRegister(&r, key, host, at)
		return r
	}
	r := sign(authT0)
	pub, at, err := VerifyRegister(r, host, authT0.Add(time.Second))
	if err != nil || !pub.Equal(key.Public()) || !at.Equal(authT0) {
		t.Fatalf("valid registration: %v, %v", err, at)
	}
	if _, _, err := VerifyRegister(r, "EDGE.example:8080", authT0); err != nil {
		t.Errorf("host case: %v", err)
	}
	tamper := map[string]func(*RegisterRequest){
		"address":   func(r *RegisterRequest) { r.Addr = "10.6.6.6:7001" },
		"name":      func(r *RegisterRequest) { r.Name = "b" },
		"upload":    func(r *RegisterRequest) { r.UploadBps++ },
		"time":      func(r *RegisterRequest) { r.Time++ },
		"key":       func(r *RegisterRequest) { r.PublicKey = authKey(4).Public().(ed25519.PublicKey) },
		"signature": func(r *RegisterRequest) { r.Signature = bytes.Clone(r.Signature); r.Signature[0] ^= 1 },
	}
	for name, f := range tamper {
		bad := sign(authT0)
		f(&bad)
		if _, _, err := VerifyRegister(bad, host, authT0); !errors.Is(err, ErrBadProof) {
			t.Errorf("tampered %s: %v, want ErrBadProof", name, err)
		}
	}
	for name, tc := range map[string]struct {
		r    RegisterRequest
		host string
		now  time.Time
		want error
	}{
		"for another edge": {sign(authT0), "other:8080", authT0, ErrBadProof},
		"stale":            {sign(authT0), host, authT0.Add(RequestSkew + time.Millisecond), ErrRequestTime},
		"from the future":  {sign(authT0.Add(RequestSkew + time.Second)), host, authT0, ErrRequestTime},
		"unsigned":         {RegisterRequest{Addr: "10.0.0.2:7001"}, host, authT0, ErrNoTicket},
		"short key":        {RegisterRequest{PublicKey: []byte{1}, Signature: make([]byte, 64)}, host, authT0, ErrBadAuthorization},
		"short signature":  {RegisterRequest{PublicKey: make([]byte, 32), Signature: []byte{1}}, host, authT0, ErrBadAuthorization},
	} {
		if _, _, err := VerifyRegister(tc.r, tc.host, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
