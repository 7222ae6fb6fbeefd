package sim

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
)

// stable is a Result's JSON without the fields that measure the machine.
func stable(t *testing.T, r Result) string {
	t.Helper()
	r.WallS, r.CPUS = 0, 0
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// With small chunks and no latency the real policies bring a flash crowd
// within a few percent of the fluid bound, and peers carry nearly all
// they can.
func TestFlashcrowdNearFluidBound(t *testing.T) {
	r, err := Run(Config{Peers: 20, Size: 64 << 20, ChunkSize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed != 20 {
		t.Fatalf("%d of 20 completed: %+v", r.Completed, r)
	}
	if r.RatioToBound < 1 || r.RatioToBound > 1.06 {
		t.Errorf("completion max %.2fs is %.3f × the bound %.2fs, want 1..1.06", r.Completion.Max, r.RatioToBound, r.FluidBound)
	}
	if r.Offload < 0.97*r.OffloadLimit {
		t.Errorf("offload %.3f, want ≥ 0.97 × limit %.3f", r.Offload, r.OffloadLimit)
	}
	if want := int64(20) << 26; r.EdgeBytes+r.PeerBytes-r.DuplicateBytes != want {
		t.Errorf("useful bytes %d, want %d (every peer the whole file once)", r.EdgeBytes+r.PeerBytes-r.DuplicateBytes, want)
	}
	if r.CrossISPBytes <= 0 || r.CrossISPBytes >= r.PeerBytes {
		t.Errorf("cross-ISP bytes %d of %d peer bytes", r.CrossISPBytes, r.PeerBytes)
	}
}

// One peer and a fast edge: the peer's downlink is the bound.
func TestReceiverLimitedCrowd(t *testing.T) {
	r, err := Run(Config{Peers: 1, Size: 8 << 20, EdgeUp: 1e9, PeerDown: 50e6, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	want := float64(8<<20) * 8 / 50e6
	if math.Abs(r.FluidBound-want) > 1e-9 || r.Completion.Max < want || r.Completion.Max > 1.01*want {
		t.Errorf("completion %.3fs, bound %.3fs, want both ≈ %.3fs", r.Completion.Max, r.FluidBound, want)
	}
	if r.PeerBytes != 0 {
		t.Errorf("peer bytes %d with no other peer", r.PeerBytes)
	}
}

func TestDeterministic(t *testing.T) {
	for _, sc := range []string{Flashcrowd, Churn} {
		cfg := Config{Scenario: sc, Peers: 60, Size: 8 << 20, RTT: 20 * time.Millisecond, Seed: 7}
		a, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(cfg)
		if stable(t, a) != stable(t, b) {
			t.Errorf("%s: same seed, different results:\n%s\n%s", sc, stable(t, a), stable(t, b))
		}
		cfg.Seed = 8
		c, _ := Run(cfg)
		if stable(t, a) == stable(t, c) {
			t.Errorf("%s: seeds 7 and 8 gave the same result", sc)
		}
	}
}

// Churn: peers come and go; every peer that does not leave mid-download
// completes.
func TestChurnCompletes(t *testing.T) {
	r, err := Run(Config{Scenario: Churn, Peers: 200, Size: 8 << 20, Churn: 0.4, RTT: 20 * time.Millisecond, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r.Left == 0 {
		t.Fatalf("no peer left mid-download: %+v", r)
	}
	if r.Failed != 0 || r.Unfinished != 0 || r.Completed+r.Left != r.Peers {
		t.Fatalf("completed %d, left %d, failed %d, unfinished %d of %d peers", r.Completed, r.Left, r.Failed, r.Unfinished, r.Peers)
	}
}

// The simulator runs the policies it is given: a swarm larger than a
// hand-out is ranked by the hand-out policy, and every chunk is picked by
// the chunk policy.
func TestDrivesGivenPolicies(t *testing.T) {
	var picks, ranks int
	cfg := Config{
		Peers: 80, Size: 4 << 20, Seed: 2,
		Policy: peer.PolicyFunc(func(in peer.PickInput) int {
			picks++
			return peer.DefaultPolicy{}.Pick(in)
		}),
		Handout: swarm.HandoutPolicyFunc(func(req swarm.Request, c []swarm.Candidate) []swarm.Candidate {
			ranks++
			return swarm.UsefulFirst{}.Rank(req, c)
		}),
	}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed != 80 {
		t.Fatalf("%d of 80 completed", r.Completed)
	}
	// The first request for a chunk always comes from a pick (endgame
	// only duplicates requests in flight).
	if chunks := 80 * (4 << 20) / r.ChunkSize; picks < chunks || int64(picks) > r.Requests {
		t.Errorf("%d picks for %d chunks delivered and %d requests", picks, chunks, r.Requests)
	}
	if ranks == 0 || int64(ranks) != r.Ranked {
		t.Errorf("hand-out policy called %d times, %d hand-outs ranked", ranks, r.Ranked)
	}
}

func TestConfigValidation(t *testing.T) {
	for name, c := range map[string]Config{
		"scenario":      {Scenario: "stampede"},
		"chunk":         {ChunkSize: 100000},
		"negative rate": {EdgeUp: -1},
		"churn":         {Churn: 1.5},
		"too many":      {Peers: 2_000_000},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A wait at a busy sender is marked over (forgetWait) only when the
// requester no longer waits there (liveWaiter finds nothing), so that
// admit may discard marked waits without reading the requester, and every
// wait that is over is marked but one kind: checked at every event of a
// churn run, where sources are dropped, downloads end and senders leave
// mid-upload.
//
// The exception is a wait superseded by a later wait of the same source:
// admit wakes a waiter and calls fill, whose applyHandout may apply a
// repeated hand-out that arrived meanwhile and, when that reorders the
// sources, leave admit's pointer on another source, which fill may then
// ask during its backoff. admit discards such a wait through liveWaiter,
// as before forgetWait existed.
func TestDeadWaitsMarked(t *testing.T) {
	s, err := New(Config{Scenario: Churn, Peers: 80, Size: 4 << 20, ChunkSize: 64 << 10, Churn: 0.4, RerankEvery: 2, HandoutSample: 60})
	if err != nil {
		t.Fatal(err)
	}
	checked, dead, superseded := 0, 0, 0
	type key struct{ peer, slot, node int32 }
	latest := map[key]uint32{} // the latest wait seen of each source
	for s.running > 0 {
		h, ok := s.q.pop()
		if !ok {
			break
		}
		e := s.q.ev[h]
		s.now = e.at
		s.dispatch(e.kind, e.obj)
		for n := range s.nodes {
			for _, w := range s.nodes[n].waiters {
				k := key{w.peer, w.slot, int32(n)}
				latest[k] = max(latest[k], w.gen)
			}
		}
		if s.q.pops%5 != 0 {
			continue // a wait lasts several events: every fifth is checked
		}
		for n := range s.nodes {
			for _, w := range s.nodes[n].waiters {
				marked := s.waitDead[w.seq/64]&(1<<(w.seq%64)) != 0
				live := s.liveWaiter(&s.peers[w.peer], int32(n), w.slot, w.gen) != nil
				checked++
				switch {
				case marked && live:
					t.Fatalf("t=%.3f: wait %d of peer %d at node %d marked over while it waits", s.now, w.seq, w.peer, n)
				case marked:
					dead++
				case !live && latest[key{w.peer, w.slot, int32(n)}] > w.gen:
					superseded++ // the same source waited again while this wait was queued
				case !live:
					t.Fatalf("t=%.3f: wait %d of peer %d at node %d over but not marked", s.now, w.seq, w.peer, n)
				}
			}
		}
	}
	if dead == 0 || checked == dead {
		t.Errorf("%d waits checked, %d over: the run did not exercise both", checked, dead)
	}
	t.Logf("%d waits checked, %d marked over, %d superseded", checked, dead, superseded)
}
