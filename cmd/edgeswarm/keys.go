package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// trustRing parses --trust-key values: each is the hex of an ed25519 public
// key, or a file holding that hex. No values gives a nil ring (the peer then
// fetches the key from its edge and logs that it did).
func trustRing(vals []string) (core.KeyRing, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	ring := core.KeyRing{}
	for _, v := range vals {
		s := strings.TrimSpace(v)
		if b, err := os.ReadFile(s); err == nil {
			s = strings.TrimSpace(string(b))
		}
		raw, err := hex.DecodeString(s)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("--trust-key %q: want %d hex digits of an ed25519 public key, or a file holding them", v, 2*ed25519.PublicKeySize)
		}
		pub := ed25519.PublicKey(raw)
		ring[core.KeyIDOf(pub)] = pub
	}
	return ring, nil
}
