package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/fluid"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
)

// With ChunkSize 0 the simulator takes the edge's chunk size unless peers ×
// chunks exceeds the budget; then it doubles it until the run fits and
// scales the agents' request and stall timeouts with it. Explicit settings
// win.
func TestChunkCoarsening(t *testing.T) {
	def := (peer.Config{}).WithDefaults()
	const size = 256 << 20
	edge := core.ChooseChunkSize(size)
	for _, n := range []int{1, 100, 1000, 10_000, 100_000, 1_000_000} {
		c := Config{Peers: n, Size: size}.withDefaults()
		chunks := int64((size + c.ChunkSize - 1) / c.ChunkSize)
		k := c.ChunkSize / edge
		switch {
		case c.edgeChunk != edge || c.ChunkSize < edge || c.ChunkSize&(c.ChunkSize-1) != 0:
			t.Fatalf("%d peers: chunk %d, edge %d (%d)", n, c.ChunkSize, c.edgeChunk, edge)
		case int64(n)*chunks > ChunkBudget && c.ChunkSize < core.MaxChunkSize:
			t.Errorf("%d peers: %d chunks of %d exceed the budget", n, chunks, c.ChunkSize)
		case k > 1 && int64(n)*2*chunks <= ChunkBudget:
			t.Errorf("%d peers: chunk %d coarser than needed", n, c.ChunkSize)
		case c.Agent.FetchTimeoutMs != k*def.FetchTimeoutMs || c.Agent.StallTimeoutMs != k*def.StallTimeoutMs:
			t.Errorf("%d peers, chunks ×%d: timeouts %d/%d ms, want ×%d", n, k, c.Agent.FetchTimeoutMs, c.Agent.StallTimeoutMs, k)
		}
	}
	if c := (Config{Peers: 100_000, Size: size}).withDefaults(); c.ChunkSize != 2<<20 {
		t.Errorf("100k peers, 256 MiB: chunk %d, want 2 MiB (the documented default)", c.ChunkSize)
	}
	c := Config{Peers: 100_000, Size: size, ChunkSize: 128 << 10}.withDefaults()
	if c.ChunkSize != 128<<10 || c.Agent.FetchTimeoutMs != def.FetchTimeoutMs {
		t.Errorf("explicit chunk size: %d, timeout %d", c.ChunkSize, c.Agent.FetchTimeoutMs)
	}
	c = Config{Peers: 100_000, Size: size, ChunkBudget: -1}.withDefaults()
	if c.ChunkSize != edge {
		t.Errorf("no budget: chunk %d, want the edge's %d", c.ChunkSize, edge)
	}
	c = Config{Peers: 100_000, Size: size, Agent: peer.Config{FetchTimeoutMs: 5000}}.withDefaults()
	if c.ChunkSize == edge || c.Agent.FetchTimeoutMs != 5000 || c.Agent.StallTimeoutMs == def.StallTimeoutMs {
		t.Errorf("explicit timeout: chunk %d, timeouts %d/%d", c.ChunkSize, c.Agent.FetchTimeoutMs, c.Agent.StallTimeoutMs)
	}
}

// A coarsened crowd still runs the real policies to completion.
func TestCoarsenedCrowdCompletes(t *testing.T) {
	r, err := Run(Config{Peers: 60, Size: 32 << 20, RTT: 20 * time.Millisecond, ChunkBudget: 60 * 64})
	if err != nil {
		t.Fatal(err)
	}
	if r.ChunkSize != 512<<10 || r.EdgeChunkSize != 64<<10 || r.FetchTimeoutMs != 8*3000 {
		t.Errorf("chunk %d (edge %d), timeout %d ms", r.ChunkSize, r.EdgeChunkSize, r.FetchTimeoutMs)
	}
	if r.Completed != 60 || r.Offload < 0.9*r.OffloadLimit {
		t.Errorf("%d of 60 completed, offload %.3f of %.3f", r.Completed, r.Offload, r.OffloadLimit)
	}
}

// The default hand-out settings follow the real tracker (a fresh ranked
// hand-out from swarm.DefaultHandoutSample members at every announce) when
// that fits the budgets, and otherwise stay within them.
func TestAutoHandouts(t *testing.T) {
	const size = 256 << 20
	c := Config{Peers: 100, Size: size}.withDefaults()
	if c.RerankEvery != 1 || c.HandoutSample < 99 {
		t.Errorf("100 peers: every %d, sample %d; want the real tracker's", c.RerankEvery, c.HandoutSample)
	}
	for _, n := range []int{1000, 10_000, 100_000} {
		c := Config{Peers: n, Size: size}.withDefaults()
		want := c.Agent.MaxPeers
		bound := fluid.Bound(c.Peers, c.Size, c.EdgeUp, c.PeerUp, c.PeerDown)
		// Peers announce at the interval the tracker gives the crowd.
		iv := swarm.AnnounceInterval(swarm.Config{}, time.Duration(c.Agent.AnnounceIntervalMs)*time.Millisecond, n)
		perPeer := bound/iv.Seconds() + 2
		growth := 1 + math.Ceil(math.Log2(max(float64(n)/float64(want), 1)))
		draws := float64(n) * (perPeer/float64(c.RerankEvery) + growth)
		chunks := float64((size + c.ChunkSize - 1) / c.ChunkSize)
		if c.RerankEvery < 1 || c.RerankEvery > maxRerank || (c.RerankEvery < maxRerank && draws*chunks > DrawBudget) {
			t.Errorf("%d peers: every %d, %.3g fresh hand-out chunks", n, c.RerankEvery, draws*chunks)
		}
		if c.RerankEvery > 1 {
			prev := float64(n) * (perPeer/float64(c.RerankEvery-1) + growth)
			if prev*chunks <= DrawBudget {
				t.Errorf("%d peers: every %d where %d fits", n, c.RerankEvery, c.RerankEvery-1)
			}
		}
		if c.HandoutSample < want || c.HandoutSample > swarm.DefaultHandoutSample ||
			(c.HandoutSample > want && draws*float64(c.HandoutSample) > RankBudget) {
			t.Errorf("%d peers: sample %d, %.3g candidates ranked", n, c.HandoutSample, draws*float64(c.HandoutSample))
		}
	}
	c = Config{Peers: 100_000, Size: size, RerankEvery: 2, HandoutSample: 700}.withDefaults()
	if c.RerankEvery != 2 || c.HandoutSample != 700 {
		t.Errorf("explicit settings changed: every %d, sample %d", c.RerankEvery, c.HandoutSample)
	}
}

// A repeated hand-out (the same peers) is applied when the loop next looks
// at its sources; by then the availability counts are exactly those of
// the sources' announced bitfields. A fresh one is drawn whatever
// RerankEvery says once the holders have doubled.
func TestRepeatAndRedraw(t *testing.T) {
	const n = 400
	s, err := New(Config{Peers: n, Size: 1 << 20, ChunkSize: 16 << 10, RerankEvery: 1000, HandoutSample: 60})
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 101; i++ { // 100 holders
		give(s, i, upTo(1+i%9)...)
	}
	p := &s.peers[1]
	s.join(p)
	deliver := func() {
		s.doAnnounce(p)
		s.onHandout(p)
	}
	deliver()
	if s.tr.ranked != 1 || len(p.sources) != 50 || p.pendDue {
		t.Fatalf("first hand-out: %d ranked, %d sources", s.tr.ranked, len(p.sources))
	}
	for _, sr := range p.sources { // every source announces more
		give(s, int(sr.node), upTo(40)...)
	}
	deliver()
	if !p.pendDue || s.tr.ranked != 1 {
		t.Fatalf("a repeat: pending %v, %d ranked", p.pendDue, s.tr.ranked)
	}
	s.applyHandout(p)
	want := make([]int32, s.nChunks)
	for _, sr := range p.sources {
		if sr.n != 40 {
			t.Fatalf("source %d at %d chunks after the repeat, want 40", sr.node, sr.n)
		}
		for _, c := range s.logOf(sr.node, sr.n) {
			want[c]++
		}
	}
	if !slices.Equal(want, p.avail) {
		t.Fatalf("avail after the repeat %v, want %v", p.avail, want)
	}
	for i := 102; i <= 201; i++ { // the holders double
		give(s, i, 0)
	}
	deliver()
	if s.tr.ranked != 2 {
		t.Errorf("holders doubled: %d ranked, want a fresh hand-out", s.tr.ranked)
	}
}

// The queue's lanes give exactly the order one heap by (time, sequence)
// gives, with events canceled and rescheduled between lanes and heap.
func TestQueueLanesOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	var q queue
	const n = 300
	for i := range n {
		q.alloc(evWake, int32(i))
	}
	type key struct {
		at  float64
		seq uint64
	}
	want := map[int32]key{} // queued events
	now := 0.0
	delays := []float64{0.01, 0.02, 0.5, 0.01}
	var got, ref []int32
	for step := 0; step < 20000; step++ {
		h := int32(r.IntN(n))
		switch r.IntN(5) {
		case 0, 1:
			q.after(h, now, delays[r.IntN(len(delays))])
			want[h] = key{q.ev[h].at, q.ev[h].seq}
		case 2:
			q.schedule(h, now+r.Float64())
			want[h] = key{q.ev[h].at, q.ev[h].seq}
		case 3:
			q.cancel(h)
			delete(want, h)
		case 4:
			if len(want) == 0 {
				continue
			}
			var best int32 = -1
			for e, k := range want {
				if best < 0 || k.at < want[best].at || (k.at == want[best].at && k.seq < want[best].seq) {
					best = e
				}
			}
			ref = append(ref, best)
			delete(want, best)
			e, ok := q.pop()
			if !ok {
				t.Fatalf("step %d: queue empty, %d events queued", step, len(want)+1)
			}
			got = append(got, e)
			now = q.ev[e].at
		}
		if _, ok := want[h]; q.queued(h) != ok {
			t.Fatalf("step %d: queued(%d) = %v, want %v", step, h, q.queued(h), ok)
		}
	}
	if !slices.Equal(got, ref) {
		t.Fatalf("pop order differs from one heap's")
	}
}
