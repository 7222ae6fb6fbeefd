package demo

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestConfigValidation(t *testing.T) {
	for name, c := range map[string]Config{
		"too many bad peers": {Peers: 3, BadPeers: 3},
		"chunk not power":    {ChunkSize: 100000},
		"too many peers":     {Peers: 100000},
		"negative rate":      {EdgeUp: -1},
		"churn of one":       {Churn: 1},
		"negative churn":     {Churn: -0.1},
		"churn every alone":  {ChurnEvery: time.Second},
		"negative every":     {Churn: 0.5, ChurnEvery: -time.Second},
		"stream too slow":    {Stream: 10},
		"negative join":      {Stream: 4e6, StreamJoinEvery: -time.Second},
	} {
		if err := c.applyDefaults().validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (Config{}).applyDefaults().validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}

func TestDemoNetworkMap(t *testing.T) {
	m, err := demoNetworkMap(3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := m.LookupHostPort(pidAddr(i) + ":7000"); got != "pid-"+string(rune('0'+i)) {
			t.Errorf("location %d's address is in %q", i, got)
		}
	}
	if m.LookupHostPort("127.0.0.1:8080") != "default" {
		t.Error("the edges' address is in a peer location")
	}
	if m, _ := demoNetworkMap(1); m != nil {
		t.Error("one location made a map")
	}
	for name, c := range map[string]Config{"bad cross-pid": {CrossPID: "sometimes"}, "too many pids": {PIDs: 500}} {
		if err := c.applyDefaults().validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestConfigValidationNaNChurn(t *testing.T) {
	if err := (Config{Churn: math.NaN()}).applyDefaults().validate(); err == nil {
		t.Fatal("NaN churn accepted")
	}
}

// TestChurnPlan: random moments kill floor(churn × n) distinct peers, each
// between 5 % and 80 % of the horizon, in time order, the same for the same
// seed; periodic churn kills that fraction of the living each round, never
// the last one, and nobody twice.
func TestChurnPlan(t *testing.T) {
	const n, horizon = 20, 10 * time.Second
	c := newChurner(Config{Churn: 0.5, Seed: 3}, n, horizon)
	if len(c.plan) != 10 {
		t.Fatalf("%d kills planned, want 10", len(c.plan))
	}
	seen := map[int]bool{}
	for k, p := range c.plan {
		if p.at < horizon/20 || p.at > horizon*8/10 || seen[p.node] || p.node < 0 || p.node >= n || k > 0 && p.at < c.plan[k-1].at {
			t.Fatalf("kill %d: %+v (plan %v)", k, p, c.plan)
		}
		seen[p.node] = true
	}
	again := newChurner(Config{Churn: 0.5, Seed: 3}, n, horizon)
	if !slices.Equal(again.plan, c.plan) {
		t.Fatal("same seed, another plan")
	}
	alive := func(i int) bool { return true }
	if got := c.due(c.plan[0].at-1, n, alive); len(got) != 0 || c.next() != c.plan[0].at {
		t.Fatalf("due early: %v", got)
	}
	first := c.plan[0].node
	if got := c.due(horizon, n, func(i int) bool { return i != first }); len(got) != 9 || slices.Contains(got, first) {
		t.Fatalf("due at the end: %v (a dead peer is not killed again)", got)
	}
	if c.next() != never || len(c.due(2*horizon, n, alive)) != 0 {
		t.Fatal("kills after the plan ran out")
	}
	if newChurner(Config{Churn: 0.99}, 3, horizon).plan == nil || len(newChurner(Config{Churn: 0.99}, 3, horizon).plan) != 2 {
		t.Fatal("churn 0.99 of 3 peers must kill 2 and spare one")
	}
	if c := newChurner(Config{}, n, horizon); c.next() != never {
		t.Fatal("no churn planned kills")
	}

	// Periodic: half of the living every second.
	p := newChurner(Config{Churn: 0.5, ChurnEvery: time.Second, Seed: 4}, 100, horizon)
	dead := map[int]bool{}
	living := func(i int) bool { return !dead[i] }
	for round, want := range []int{50, 25, 12, 6, 3, 2, 1, 0, 0} {
		if p.next() != time.Duration(round+1)*time.Second {
			t.Fatalf("round %d due at %v", round, p.next())
		}
		if got := p.due(p.next()-time.Millisecond, 100, living); got != nil {
			t.Fatalf("round %d early: %v", round, got)
		}
		got := p.due(p.next(), 100, living)
		if len(got) != want {
			t.Fatalf("round %d killed %d, want %d", round, len(got), want)
		}
		for _, i := range got {
			if dead[i] {
				t.Fatalf("round %d killed %d twice", round, i)
			}
			dead[i] = true
		}
	}
	if len(dead) != 99 {
		t.Fatalf("%d dead, want all but one", len(dead))
	}
}

// TestChurnLateRound: a round that comes late does not make up for the
// missed ones at once: one round, then the next period boundary.
func TestChurnLateRound(t *testing.T) {
	p := newChurner(Config{Churn: 0.5, ChurnEvery: time.Second, Seed: 5}, 100, time.Minute)
	alive := func(int) bool { return true }
	if got := p.due(3500*time.Millisecond, 100, alive); len(got) != 50 {
		t.Fatalf("late round killed %d, want 50", len(got))
	}
	if p.next() != 4*time.Second {
		t.Fatalf("next round at %v, want 4s", p.next())
	}
}

// TestDemoStream: viewers joining one after another play the whole stream
// without stalling, the later ones mostly from the earlier ones, and the
// bytes played are the origin's.
func TestDemoStream(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a stream in real time")
	}
	res, err := Run(t.Context(), Config{Peers: 4, Size: 6 << 20, ChunkSize: 64 << 10, EdgeUp: 40e6, PeerUp: 40e6,
		Stream: 8e6, StreamJoinEvery: 500 * time.Millisecond, MemoryStore: true, Timeout: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ttfb %+v start-up %+v rebuffer %.4f stalls %d offload %.3f edge-only ttfb %.4f", *res.TTFB, *res.Startup,
		res.RebufferRatio, res.Stalls, res.Offload, res.EdgeOnlyTTFB)
	if !res.SHA256Match || res.Survivors != 4 {
		t.Fatalf("sha256 match %v, survivors %d", res.SHA256Match, res.Survivors)
	}
	// How much (offload, rebuffering) is a benchmark figure (BENCHMARKS,
	// "Viewers of a stream"); here: later viewers take from earlier ones.
	if res.BytesFromPeers == 0 {
		t.Errorf("no viewer took bytes from another (offload %.3f)", res.Offload)
	}
	if res.TTFB.Median <= 0 || res.EdgeOnlyTTFB <= 0 || res.StreamMbit != 8 {
		t.Errorf("stream figures missing: %+v", res)
	}
}
