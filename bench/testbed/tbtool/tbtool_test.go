//go:build linux

package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestFluidBound(t *testing.T) {
	// The acceptance scenario: 20 peers, 64 MiB, edge 100, peers 20 up / 100 down.
	b, lim := fluidBound(20, 64<<20, 100, 20, 100)
	if math.Abs(b-21.475) > 0.001 || math.Abs(lim-0.8) > 1e-9 {
		t.Fatalf("bound %v limit %v", b, lim)
	}
	// One peer: the edge's (or the peer's download) rate bounds it; no offload possible.
	b, lim = fluidBound(1, 125e6, 100, 20, 50)
	if b != 20 || lim != 0 {
		t.Fatalf("bound %v limit %v", b, lim)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"64MiB": 64 << 20, "8MiB": 8 << 20, "123": 123, "1.5KiB": 1536, "10MB": 10e6, "1g": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "5 parsecs"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDelayLate(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	os.WriteFile(a, []byte(`{"pid":7,"queues":[{"queue":0,"delay_ms":10,"packets":100,"delay_sum_ms":1000}]}`+"\n"), 0o644)
	os.WriteFile(b, []byte(`{"pid":7,"queues":[{"queue":0,"delay_ms":10,"packets":300,"delay_sum_ms":3100}]}`+"\n"), 0o644)
	late, n, err := delayLate(a, b)
	if err != nil || n != 200 || math.Abs(late-0.5) > 1e-9 {
		t.Fatalf("late %v n %d err %v", late, n, err)
	}
}
