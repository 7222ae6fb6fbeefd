// Package keyfile keeps an ed25519 private key in a file: the edge tier's
// manifest-signing key, a peer agent's identity key. A missing file is
// created with a fresh key, readable only by its owner.
package keyfile

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreate reads the ed25519 private key at path, or creates one
// there (mode 0600, PKCS#8 PEM) if the file does not exist. It accepts a PEM
// "PRIVATE KEY" (PKCS#8), a raw 32-byte seed, a raw 64-byte private key, or
// the seed as 64 hex digits.
func LoadOrCreate(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	key, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

// Parse reads a key in any of the forms LoadOrCreate accepts.
func Parse(data []byte) (ed25519.PrivateKey, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		if blk.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("PEM block %q, want PRIVATE KEY", blk.Type)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("PKCS#8 key is %T, want ed25519", k)
		}
		return ek, nil
	}
	switch len(data) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(data), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(data[:ed25519.SeedSize])
		if string(k) != string(data) {
			return nil, errors.New("raw 64-byte key: public half does not match the seed")
		}
		return k, nil
	}
	if seed, err := hex.DecodeString(strings.TrimSpace(string(data))); err == nil && len(seed) == ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(seed), nil
	}
	return nil, fmt.Errorf("%d bytes: not a PEM key, a raw seed or a hex seed", len(data))
}

func createKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("key file: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("key file: encode: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	// Write a temp file, then link it into place: link fails if the path
	// exists, so two processes starting at once on one path never overwrite
	// or half-read each other's key; the loser reads the winner's.
	f, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer os.Remove(f.Name())
	err = f.Chmod(0o600)
	if err == nil {
		err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("key file: write %s: %w", path, err)
	}
	if err := os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
		return LoadOrCreate(path)
	} else if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	return priv, nil
}
