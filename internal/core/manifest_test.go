package core

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testObject(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

func signedManifest(t testing.TB, data []byte, cs int) *Manifest {
	t.Helper()
	m, err := BuildManifest(bytes.NewReader(data), "/videos/a.mp4", `"v1"`, "video/mp4", int64(len(data)), cs)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(testKey(1)); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManifestGolden(t *testing.T) {
	m := signedManifest(t, testObject(100_000), 16<<10)
	enc, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "manifest_v1.golden.hex")
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
	var back Manifest
	if err := back.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(NewKeyRing(testKey(1).Public().(ed25519.PublicKey))); err != nil {
		t.Fatal(err)
	}
	if back.NumChunks() != 7 || back.ChunkLen(6) != 100_000-6*16384 {
		t.Fatalf("chunks %d, last %d", back.NumChunks(), back.ChunkLen(6))
	}
}

func TestManifestVerifyRefuses(t *testing.T) {
	ring := NewKeyRing(testKey(1).Public().(ed25519.PublicKey))
	tests := map[string]struct {
		mutate func(m *Manifest)
		want   error
	}{
		"flipped hash":     {func(m *Manifest) { m.Hashes[2][0] ^= 1 }, ErrBadRoot},
		"flipped root":     {func(m *Manifest) { m.Hashes[2][0] ^= 1; m.Root = RootHash(m.Hashes) }, ErrBadSignature},
		"changed url":      {func(m *Manifest) { m.URL = "/other" }, ErrBadSignature},
		"changed size":     {func(m *Manifest) { m.Size-- }, ErrBadSignature},
		"changed type":     {func(m *Manifest) { m.ContentType = "text/html" }, ErrBadSignature},
		"flipped sig":      {func(m *Manifest) { m.Signature[5] ^= 0x10 }, ErrBadSignature},
		"short sig":        {func(m *Manifest) { m.Signature = m.Signature[:10] }, ErrBadSignature},
		"unknown key":      {func(m *Manifest) { m.Sign(testKey(2)) }, ErrUnknownKey},
		"forged key id":    {func(m *Manifest) { m.Sign(testKey(2)); m.KeyID = KeyIDOf(testKey(1).Public().(ed25519.PublicKey)) }, ErrBadSignature},
		"hash count wrong": {func(m *Manifest) { m.Hashes = m.Hashes[:3] }, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := signedManifest(t, testObject(100_000), 16<<10)
			tc.mutate(m)
			err := m.Verify(ring)
			if err == nil {
				t.Fatal("verify accepted a tampered manifest")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUnmarshalRejectsBadInput(t *testing.T) {
	m := signedManifest(t, testObject(50_000), 16<<10)
	enc, _ := m.MarshalBinary()
	cases := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XSM1"), enc[4:]...),
		"truncated": enc[:len(enc)-3],
		"trailing":  append(append([]byte(nil), enc...), 0),
		"huge count": func() []byte {
			b := append([]byte(nil), enc...)
			// chunk count sits after magic, url, validator, size, chunk size, content type.
			off := 4 + 2 + len(m.URL) + 2 + len(m.Validator) + 8 + 4 + 2 + len(m.ContentType)
			copy(b[off:], []byte{0xff, 0xff, 0xff, 0xff})
			return b
		}(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var got Manifest
			if err := got.UnmarshalBinary(b); err == nil {
				t.Fatal("accepted malformed manifest")
			} else if !strings.HasPrefix(err.Error(), "manifest") {
				t.Fatalf("error %q does not say what failed", err)
			}
		})
	}
}

func TestCheckChunk(t *testing.T) {
	data := testObject(40_000)
	m := signedManifest(t, data, 16<<10)
	if err := m.CheckChunk(2, data[32768:]); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data[:16384]...)
	bad[100] ^= 1
	if err := m.CheckChunk(0, bad); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("flipped bit: %v", err)
	}
	if err := m.CheckChunk(0, data[:100]); !errors.Is(err, ErrChunkLength) {
		t.Fatalf("short chunk: %v", err)
	}
	if err := m.CheckChunk(3, data[:10]); err == nil {
		t.Fatal("out of range accepted")
	}
}

func TestChooseChunkSize(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int
	}{{0, 64 << 10}, {1 << 20, 64 << 10}, {64 << 20, 64 << 10}, {1 << 30, 512 << 10}, {4 << 30, 2 << 20}} {
		if got := ChooseChunkSize(tc.size); got != tc.want {
			t.Errorf("ChooseChunkSize(%d) = %d, want %d", tc.size, got, tc.want)
		}
		if n := NumChunks(tc.size, ChooseChunkSize(tc.size)); n > TargetChunks {
			t.Errorf("size %d: %d chunks", tc.size, n)
		}
	}
}

func TestBitfield(t *testing.T) {
	f := NewBitfield(11)
	f.Set(0)
	f.Set(10)
	if !f.Has(0) || !f.Has(10) || f.Has(5) || f.Has(11) || f.Has(-1) || f.Count() != 2 {
		t.Fatal("bitfield bookkeeping wrong")
	}
	g, err := BitfieldFromBytes(11, f.Bytes())
	if err != nil || g.Count() != 2 || !g.Has(10) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := BitfieldFromBytes(11, []byte{0, 0xff}); err == nil {
		t.Fatal("accepted bits past the end")
	}
	if _, err := BitfieldFromBytes(11, []byte{0}); err == nil {
		t.Fatal("accepted short field")
	}
}

func FuzzManifestUnmarshal(f *testing.F) {
	m := signedManifest(f, testObject(50_000), 16<<10)
	enc, _ := m.MarshalBinary()
	f.Add(enc)
	f.Add([]byte("ESM1"))
	ring := NewKeyRing(testKey(1).Public().(ed25519.PublicKey))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Manifest
		if err := got.UnmarshalBinary(b); err != nil {
			return
		}
		re, err := got.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded manifest does not re-encode: %v", err)
		}
		if !bytes.Equal(re, b) {
			t.Fatal("decode/encode not stable")
		}
		if got.Verify(ring) == nil && !bytes.Equal(b, enc) {
			t.Fatal("a different manifest verified under the test key")
		}
	})
}

func FuzzBitfield(f *testing.F) {
	f.Add(11, []byte{0x80, 0x20})
	f.Fuzz(func(t *testing.T, n int, b []byte) {
		if n > 1<<20 {
			return
		}
		bf, err := BitfieldFromBytes(n, b)
		if err != nil {
			return
		}
		if bf.Count() > n || !bytes.Equal(bf.Bytes(), b) {
			t.Fatal("bitfield round trip broken")
		}
	})
}
