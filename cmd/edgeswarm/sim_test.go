package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// runSim runs `edgeswarm sim args...` in-process and returns its stdout.
func runSim(t *testing.T, args ...string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	cmd := newSimCmd(nil)
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err = cmd.Execute()
	w.Close()
	out := <-done
	if err != nil {
		t.Fatalf("sim %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// A crowd too large for the chunk budget runs in coarser chunks, says so
// in the JSON (chunk_size against edge_chunk_size, the scaled timeouts)
// and in the summary.
func TestSimCoarsensChunks(t *testing.T) {
	args := []string{"--peers", "40", "--size", "8MiB", "--chunk-budget", "640"}
	var r struct {
		ChunkSize      int     `json:"chunk_size"`
		EdgeChunkSize  int     `json:"edge_chunk_size"`
		FetchTimeoutMs int     `json:"fetch_timeout_ms"`
		StallTimeoutMs int     `json:"stall_timeout_ms"`
		Completed      int     `json:"completed"`
		Ratio          float64 `json:"ratio_to_bound"`
		HandoutSample  int     `json:"handout_sample"`
		RerankEvery    int     `json:"rerank_every"`
	}
	out := runSim(t, append(args, "--json")...)
	if err := json.NewDecoder(bytes.NewReader([]byte(out))).Decode(&r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.ChunkSize != 512<<10 || r.EdgeChunkSize != 64<<10 || r.FetchTimeoutMs != 24000 || r.StallTimeoutMs != 480000 {
		t.Errorf("chunk %d (edge %d), timeouts %d/%d ms; want 512 KiB from 64 KiB, ×8", r.ChunkSize, r.EdgeChunkSize, r.FetchTimeoutMs, r.StallTimeoutMs)
	}
	if r.Completed != 40 || r.Ratio < 1 || r.RerankEvery < 1 || r.HandoutSample < 1 {
		t.Errorf("%+v", r)
	}
	if out := runSim(t, args...); !strings.Contains(out, "coarsened from the edge's 64.0 KiB") || !strings.Contains(out, "512.0 KiB chunks") {
		t.Errorf("summary does not say the chunks were coarsened:\n%s", out)
	}
	out = runSim(t, "--peers", "40", "--size", "8MiB", "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.ChunkSize != 64<<10 || r.FetchTimeoutMs != 3000 {
		t.Errorf("within the budget: chunk %d, timeout %d ms (%v)", r.ChunkSize, r.FetchTimeoutMs, err)
	}
}
