package keyfile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "edge.key")
	k1, err := LoadOrCreate(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode())
	}
	k2, err := LoadOrCreate(p)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reload: %v, same key %v", err, k1.Equal(k2))
	}

	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	want := ed25519.NewKeyFromSeed(seed)
	for name, data := range map[string][]byte{
		"raw seed": seed,
		"raw key":  want,
		"hex seed": []byte(hex.EncodeToString(seed) + "\n"),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		got, err := LoadOrCreate(p)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := LoadOrCreate(bad); err == nil {
		t.Error("garbage accepted as a key")
	}

	// Edges racing to create one key all end up with the same key.
	race := filepath.Join(dir, "race.key")
	keys := make([]ed25519.PrivateKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() { defer wg.Done(); keys[i], _ = LoadOrCreate(race) }()
	}
	wg.Wait()
	for i, k := range keys {
		if !k.Equal(keys[0]) {
			t.Fatalf("racer %d got a different key", i)
		}
	}
}
