package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/peer"
)

// edgeChunkBytes reads edgeswarm_edge_bytes_served_total{kind="chunk"} from
// an edge's /metrics: the chunk bytes it has sent.
func edgeChunkBytes(t *testing.T, edgeURL string) int64 {
	t.Helper()
	resp, err := http.Get(edgeURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `edgeswarm_edge_bytes_served_total{kind="chunk"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric value %q: %v", v, err)
			}
			return int64(f)
		}
	}
	return 0
}

// TestBattery23_PeerKilledAndRestartedResumes: a real `edgeswarm get`
// process downloading into --data-dir is killed with SIGKILL a third of the
// way through, then run again with the same directory. The second run
// re-verifies what the first left on disk and keeps it, fetches only the
// rest, and writes the origin's bytes; the bytes the edge sent the first
// run that were not kept (the chunks in flight at the kill) are at most one
// chunk per request the agent keeps open to the edge, its only source.
func TestBattery23_PeerKilledAndRestartedResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	dir := t.TempDir()
	const size = 24 << 20
	obj := make([]byte, size)
	for i := range obj {
		obj[i] = byte(i*131 + i>>9 + i>>17)
	}
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	originAddr, edgeAddr := freeAddr(t), freeAddr(t)
	start(t, bin, "origin", "--dir", dir, "--listen", originAddr)("origin serving")
	key := start(t, bin, "edge", "--origin", "http://"+originAddr, "--listen", edgeAddr,
		"--cache-dir", filepath.Join(t.TempDir(), "cache"), "--cache-size", "256MiB")(`public_key=([0-9a-f]{64})`)
	edgeURL := "http://" + edgeAddr
	dataDir := filepath.Join(t.TempDir(), "chunks")
	out := filepath.Join(t.TempDir(), "got.bin")
	args := []string{"get", edgeURL + "/big.bin", "-o", out, "--json", "--trust-key", key,
		"--data-dir", dataDir, "--download-limit", "32Mbit"}

	// First run: killed once the edge has sent a third of the object.
	first := exec.Command(bin, args...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for edgeChunkBytes(t, edgeURL) < size/3 {
		select {
		case err := <-exited:
			t.Fatalf("get ended before the kill: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatal("a third of the object never left the edge")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	// The edge counts a chunk's bytes when its write ends: wait until the
	// count stops moving.
	sent1 := edgeChunkBytes(t, edgeURL)
	for stable := 0; stable < 5; time.Sleep(100 * time.Millisecond) {
		if n := edgeChunkBytes(t, edgeURL); n != sent1 {
			sent1, stable = n, 0
		} else {
			stable++
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the killed get wrote its output")
	}

	// Second run, same data directory.
	stdout, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("second get: %v\n%s", err, stdout)
	}
	var res getResult
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("get --json printed %q: %v", stdout, err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(obj) || res.SHA256 != fmt.Sprintf("%x", sha256.Sum256(obj)) {
		t.Fatal("the resumed download's bytes differ from the origin's")
	}
	sent2 := edgeChunkBytes(t, edgeURL) - sent1
	refetched := sent1 - res.ResumedBytes
	slots := peer.Config{}.WithDefaults().MaxEdgeSlots
	t.Logf("first run: edge sent %d B before the kill; second run: resumed %d B, fetched %d B (edge sent %d B); refetched %d B = %.2f chunks of %d B (limit %d chunks)",
		sent1, res.ResumedBytes, res.BytesFromEdge, sent2, refetched, float64(refetched)/float64(res.ChunkSize), res.ChunkSize, slots)
	switch {
	case res.ResumedBytes < size/4:
		t.Errorf("resumed %d bytes, want most of the %d the first run got", res.ResumedBytes, sent1)
	case res.ResumedBytes+res.BytesFromEdge+res.BytesFromPeers != size:
		t.Errorf("resumed %d + fetched %d + %d bytes, want exactly the object (%d)", res.ResumedBytes, res.BytesFromEdge, res.BytesFromPeers, size)
	case refetched < 0 || refetched > int64(slots*res.ChunkSize):
		t.Errorf("refetched %d bytes: more than one chunk (%d B) for each of at most %d requests in flight", refetched, res.ChunkSize, slots)
	}
}
