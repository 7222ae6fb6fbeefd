package edge

// Usage: who delivered each object's bytes to whom. The edge counts the
// chunk bytes it sends itself; peers report the bytes they received from
// other peers (wire.AnnounceRequest.Received). Both are kept per object
// version and per (source kind, source location, receiver location), so an
// operator sees each object's offload and the bytes that crossed network
// locations, and a content provider sees what was delivered for it.

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// Source kinds of delivered bytes (the "source" label and JSON field).
const (
	SourceEdge  = "edge"
	SourcePeer  = "peer"
	SourceCache = "cache" // a managed cache (peer --managed)
)

// Pseudo-locations of usage pairs.
const (
	pidEdge    = "edge"    // the source is this edge
	pidNone    = "none"    // no network map: every peer is in one place
	pidUnknown = "unknown" // a source peer this edge does not know (another edge's, or gone)
	pidOther   = "other"   // past a bound: folded together
)

// Bounds of the usage tables; past them bytes are still counted, folded
// into a shared row.
const (
	usagePeersMax   = 100000 // per-peer upload attribution
	usageObjectsMax = 10000  // object versions with their own row
	usagePairsMax   = 1024   // (kind, from, to) pairs per object version
	usageSeriesMax  = 4096   // label sets of edgeswarm_edge_swarm_bytes_total
	// maxReportedBytes bounds one report entry, a sanity check: no source
	// sends anything near this between two announces.
	maxReportedBytes = 1 << 50
)

// usagePair is one row of an object's usage.
type usagePair struct {
	source, from, to string
}

// objectUsage is the usage of one object version.
type objectUsage struct {
	url   string
	pairs map[usagePair]int64
}

// usage counts delivered bytes. Its methods are safe for concurrent use.
type usage struct {
	bytes *prometheus.CounterVec // edgeswarm_edge_swarm_bytes_total; nil in tests that build no metrics
	cross prometheus.Counter     // edgeswarm_edge_cross_pid_bytes_total

	mu     sync.Mutex
	byPeer map[string]int64                 // guarded by mu: edge chunk bytes per requesting peer; "" = unattributed
	byRoot map[core.Hash]*objectUsage       // guarded by mu; the zero hash holds objects past usageObjectsMax
	series map[usagePair]prometheus.Counter // guarded by mu: metric children, at most usageSeriesMax
}

// register adds the usage metrics to reg.
func (u *usage) register(reg *prometheus.Registry) {
	u.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgeswarm_edge_swarm_bytes_total",
		Help: "Chunk bytes delivered to peers of this edge, by source (edge, cache, peer), the source's network location and the receiver's (" +
			pidEdge + ": this edge; " + pidNone + ": no network map; " + pidUnknown + ": a peer this edge does not know; " + pidOther + ": past " +
			"the series bound). Peer and cache bytes are what receivers reported.",
	}, []string{"source", "from_pid", "to_pid"})
	u.cross = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgeswarm_edge_cross_pid_bytes_total",
		Help: "Peer and cache bytes whose source and receiver are in different network locations, as reported by receivers.",
	})
	reg.MustRegister(u.bytes, u.cross)
}

// pidLabel names a location for the tables.
func pidLabel(pid string) string {
	if pid == "" {
		return pidNone
	}
	return pid
}

// fromEdge counts n chunk bytes of m this edge sent to peerID (a header's
// claim: kept per peer only if the tracker knows it).
func (s *Server) usageFromEdge(m *core.Manifest, peerID string, n int64) {
	if n <= 0 {
		return
	}
	pid, known := s.tracker.Location(peerID)
	if !known {
		peerID = ""
	}
	u := &s.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byPeer == nil {
		u.byPeer = make(map[string]int64)
	}
	if _, ok := u.byPeer[peerID]; !ok && len(u.byPeer) >= usagePeersMax {
		peerID = ""
	}
	u.byPeer[peerID] += n
	to := pidLabel(pid)
	if !known {
		to = pidUnknown
	}
	u.addLocked(m, usagePair{SourceEdge, pidEdge, to}, n)
}

// usageReported counts what peerID reports it received of m. The caller
// has authenticated peerID and checked the report's shape (checkReceived).
func (s *Server) usageReported(m *core.Manifest, peerID string, recv []wire.Received) {
	if len(recv) == 0 {
		return
	}
	toPID, _ := s.tracker.Location(peerID)
	to := pidLabel(toPID)
	type row struct {
		p usagePair
		n int64
	}
	rows := make([]row, 0, len(recv))
	for _, r := range recv {
		if r.Bytes == 0 {
			continue
		}
		pid, known, managed := s.tracker.Describe(r.From)
		p := usagePair{SourcePeer, pidLabel(pid), to}
		if managed {
			p.source = SourceCache
		}
		if !known {
			p.from = pidUnknown
		}
		rows = append(rows, row{p, r.Bytes})
	}
	u := &s.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range rows {
		u.addLocked(m, r.p, r.n)
	}
}

// checkReceived refuses a usage report a peer could not have made.
func checkReceived(recv []wire.Received, seq uint64, self string) error {
	if len(recv) > 0 && seq == 0 {
		return errorf(http.StatusBadRequest, "received: a report without its received_seq")
	}
	if len(recv) > wire.MaxReceived {
		return errorf(http.StatusBadRequest, "received: %d entries, at most %d", len(recv), wire.MaxReceived)
	}
	for _, r := range recv {
		switch {
		case r.From == "" || len(r.From) > 128:
			return errorf(http.StatusBadRequest, "received: source id of %d bytes", len(r.From))
		case r.From == self:
			return errorf(http.StatusBadRequest, "received: a peer does not receive from itself")
		case r.Bytes < 0 || r.Bytes > maxReportedBytes:
			return errorf(http.StatusBadRequest, "received: %d bytes from %s", r.Bytes, truncate(r.From, 40))
		}
	}
	return nil
}

func (u *usage) addLocked(m *core.Manifest, p usagePair, n int64) {
	if u.byRoot == nil {
		u.byRoot = make(map[core.Hash]*objectUsage)
	}
	root, url := m.Root, m.URL
	o := u.byRoot[root]
	if o == nil {
		if len(u.byRoot) >= usageObjectsMax {
			root, url = core.Hash{}, "(other objects)"
			o = u.byRoot[root]
		}
		if o == nil {
			o = &objectUsage{url: url, pairs: make(map[usagePair]int64)}
			u.byRoot[root] = o
		}
	}
	key := p
	if _, ok := o.pairs[key]; !ok && len(o.pairs) >= usagePairsMax {
		key = usagePair{p.source, pidOther, pidOther}
	}
	o.pairs[key] += n
	if u.bytes == nil {
		return
	}
	c := u.series[p]
	if c == nil {
		if u.series == nil {
			u.series = make(map[usagePair]prometheus.Counter)
		}
		sp := p
		if len(u.series) >= usageSeriesMax {
			sp = usagePair{p.source, pidOther, pidOther}
		}
		c = u.bytes.WithLabelValues(sp.source, sp.from, sp.to)
		if len(u.series) < usageSeriesMax {
			u.series[p] = c
		}
	}
	c.Add(float64(n))
	if p.crossPID() {
		u.cross.Add(float64(n))
	}
}

// crossPID: peer or cache bytes between two known, different locations.
func (p usagePair) crossPID() bool {
	if p.source == SourceEdge || p.from == p.to {
		return false
	}
	for _, pid := range []string{p.from, p.to} {
		if pid == pidUnknown || pid == pidOther || pid == pidNone {
			return false
		}
	}
	return true
}

func (u *usage) peerSnapshot() map[string]int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]int64, len(u.byPeer))
	for k, v := range u.byPeer {
		out[k] = v
	}
	return out
}

// UsageReport is the edge's usage JSON (admin GET /usage).
type UsageReport struct {
	Objects []ObjectUsage `json:"objects"`
	Total   UsageTotals   `json:"total"`
}

// UsageTotals sums delivered bytes by source.
type UsageTotals struct {
	EdgeBytes  int64 `json:"edge_bytes"`
	CacheBytes int64 `json:"cache_bytes"`
	PeerBytes  int64 `json:"peer_bytes"`
	// Offload is (cache + peer) / all bytes; 0 when nothing was delivered.
	Offload       float64 `json:"offload"`
	CrossPIDBytes int64   `json:"cross_pid_bytes"`
}

// ObjectUsage is the usage of one object version.
type ObjectUsage struct {
	URL  string `json:"url"`
	Root string `json:"root"` // "" for the row of objects past the table's bound
	UsageTotals
	Pairs []PairUsage `json:"pairs"`
}

// PairUsage is the bytes of one source kind from one location to another.
type PairUsage struct {
	Source  string `json:"source"`
	FromPID string `json:"from_pid"`
	ToPID   string `json:"to_pid"`
	Bytes   int64  `json:"bytes"`
}

func (t *UsageTotals) add(p usagePair, n int64) {
	switch p.source {
	case SourceEdge:
		t.EdgeBytes += n
	case SourceCache:
		t.CacheBytes += n
	default:
		t.PeerBytes += n
	}
	if p.crossPID() {
		t.CrossPIDBytes += n
	}
}

func (t *UsageTotals) finish() {
	if all := t.EdgeBytes + t.CacheBytes + t.PeerBytes; all > 0 {
		t.Offload = float64(t.CacheBytes+t.PeerBytes) / float64(all)
	}
}

// Usage returns the usage of every object version (of those whose URL is
// url, if url is not ""), sorted by URL then root.
func (s *Server) Usage(url string) UsageReport {
	u := &s.usage
	u.mu.Lock()
	rep := UsageReport{Objects: []ObjectUsage{}}
	for root, o := range u.byRoot {
		if url != "" && o.url != url {
			continue
		}
		ou := ObjectUsage{URL: o.url, Pairs: make([]PairUsage, 0, len(o.pairs))}
		if !root.IsZero() {
			ou.Root = root.String()
		}
		for p, n := range o.pairs {
			ou.Pairs = append(ou.Pairs, PairUsage{p.source, p.from, p.to, n})
			ou.add(p, n)
			rep.Total.add(p, n)
		}
		rep.Objects = append(rep.Objects, ou)
	}
	u.mu.Unlock()
	for i := range rep.Objects {
		o := &rep.Objects[i]
		o.finish()
		slices.SortFunc(o.Pairs, func(a, b PairUsage) int {
			return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.FromPID, b.FromPID), cmp.Compare(a.ToPID, b.ToPID))
		})
	}
	rep.Total.finish()
	slices.SortFunc(rep.Objects, func(a, b ObjectUsage) int {
		return cmp.Or(cmp.Compare(a.URL, b.URL), cmp.Compare(a.Root, b.Root))
	})
	return rep
}

// handleUsage serves GET /usage[?url=/path] on the admin listener.
func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request) error {
	url := r.URL.Query().Get("url")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(s.Usage(url))
}
