//go:build linux

package main

// The flash crowd's scenario options, as `edgeswarm demo` has them: churn
// (a seeded plan of peers killed during the crowd, and the killer that
// carries it out) and the edge's own account of delivered bytes (admin
// GET /usage), from which the network-location figures come.

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// kill is one entry of a churn plan: peer Peer is killed AtS seconds after
// the common start.
type kill struct {
	Peer int     `json:"peer"`
	AtS  float64 `json:"at_s"`
}

// churnPlan draws the victims and their moments as `edgeswarm demo --churn`
// does: floor(frac·n) peers (at most n−1: one survives), each killed at a
// uniformly drawn moment between 5 % and 80 % of horizonS, sorted by time.
// The same seed gives the same plan.
func churnPlan(n int, frac, horizonS float64, seed uint64) ([]kill, error) {
	switch {
	case n < 1:
		return nil, fmt.Errorf("churn: %d peers", n)
	case !(frac >= 0 && frac < 1): // NaN fails too
		return nil, fmt.Errorf("churn %v: want a fraction of the peers in [0, 1) (one must survive)", frac)
	case !(horizonS > 0):
		return nil, fmt.Errorf("churn: horizon %v s", horizonS)
	}
	rnd := rand.New(rand.NewPCG(seed, 0xc4a2))
	k := min(int(frac*float64(n)), n-1)
	plan := make([]kill, 0, k)
	for _, p := range rnd.Perm(n)[:k] {
		plan = append(plan, kill{Peer: p, AtS: (0.05 + 0.75*rnd.Float64()) * horizonS})
	}
	slices.SortFunc(plan, func(a, b kill) int {
		if a.AtS != b.AtS {
			if a.AtS < b.AtS {
				return -1
			}
			return 1
		}
		return a.Peer - b.Peer
	})
	return plan, nil
}

func cmdChurnPlan(args []string) error {
	fs := flag.NewFlagSet("churnplan", flag.ContinueOnError)
	n := fs.Int("peers", 0, "peers in the crowd")
	frac := fs.Float64("frac", 0, "fraction of the peers killed, in [0, 1)")
	size := fs.String("file-bytes", "0", "file size")
	edgeUp := fs.Float64("edge-up", 0, "edge upload, Mbit/s")
	peerUp := fs.Float64("peer-up", 0, "peer upload, Mbit/s")
	peerDown := fs.Float64("peer-down", 0, "peer download, Mbit/s")
	seed := fs.Uint64("seed", 1, "seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fb, err := parseSize(*size)
	if err != nil {
		return err
	}
	// The kills fall in [5 %, 80 %] of the crowd's fluid bound.
	horizon, _ := fluidBound(*n, fb, *edgeUp, *peerUp, *peerDown)
	plan, err := churnPlan(*n, *frac, horizon, *seed)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for _, k := range plan {
		k.AtS = r3(k.AtS)
		if err := enc.Encode(k); err != nil {
			return err
		}
	}
	return nil
}

// killRecord is one line of a churn log: what the killer did to a victim.
type killRecord struct {
	Peer      int     `json:"peer"`
	AtS       float64 `json:"at_s"`     // planned, after the common start
	KilledS   float64 `json:"killed_s"` // when the signal was sent (or found nothing to kill)
	WasAlive  bool    `json:"was_running"`
	ChildPID  int     `json:"child_pid,omitempty"`
	KillError string  `json:"error,omitempty"`
}

// cmdChurn carries out a churn plan: at each moment (after --at) it
// SIGKILLs the victim's process, the child of `tbtool run` whose stats
// file is STATS-DIR/pK.stats, and logs what it did, one JSON line a victim.
// It ends after the last victim or at --deadline-s after --at.
func cmdChurn(args []string) error {
	fs := flag.NewFlagSet("churn", flag.ContinueOnError)
	planPath := fs.String("plan", "", "plan (JSON lines {peer, at_s}, from churnplan)")
	at := fs.Int64("at", 0, "the common start, unix nanoseconds")
	statsDir := fs.String("stats-dir", "", "directory of the peers' `tbtool run` stats files (pK.stats)")
	outPath := fs.String("out", "", "churn log to write")
	deadline := fs.Float64("deadline-s", 3600, "give up this long after --at")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *planPath == "" || *at <= 0 || *statsDir == "" || *outPath == "" {
		return errors.New("want --plan FILE --at UNIXNS --stats-dir DIR --out FILE")
	}
	plan, err := readJSONLines[kill](*planPath)
	if err != nil {
		return err
	}
	out, err := os.Create(*outPath)
	if err != nil {
		return err
	}
	defer out.Close()
	enc := json.NewEncoder(out)
	start := time.Unix(0, *at)
	for _, k := range plan {
		if k.AtS > *deadline {
			break
		}
		time.Sleep(time.Until(start.Add(time.Duration(k.AtS * float64(time.Second)))))
		rec := killRecord{Peer: k.Peer, AtS: k.AtS}
		stats := fmt.Sprintf("%s/p%d.stats", *statsDir, k.Peer)
		// `tbtool run` writes the stats file when it has started the child
		// at the common start: give a late start a moment.
		for i := 0; i < 20; i++ {
			if _, err := os.Stat(stats); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		rec.ChildPID, rec.WasAlive, err = killPeer(stats)
		if err != nil {
			rec.KillError = err.Error()
		}
		rec.KilledS = r3(time.Since(start).Seconds())
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	return nil
}

// killPeer SIGKILLs the running child recorded in a `tbtool run` stats
// file, if it still runs and is still the process the file names.
func killPeer(statsPath string) (pid int, alive bool, err error) {
	var st runStats
	if err := readJSONFile(statsPath, &st); err != nil {
		return 0, false, err
	}
	if !st.Running || st.ChildPID <= 0 || len(st.Cmd) == 0 {
		return st.ChildPID, false, nil // done already (or never started)
	}
	var cmdline []byte
	// A process in the middle of its exec shows an empty command line for
	// a moment (so does a zombie, for good): look again a few times.
	for i := 0; i < 50; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.ChildPID))
		if err != nil {
			return st.ChildPID, false, nil // exited since
		}
		if cmdline = b; len(b) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(cmdline) == 0 {
		return st.ChildPID, false, nil // a zombie: it has exited
	}
	if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); argv0 != st.Cmd[0] {
		return st.ChildPID, false, fmt.Errorf("pid %d runs %q, not %q", st.ChildPID, argv0, st.Cmd[0])
	}
	if err := syscall.Kill(st.ChildPID, syscall.SIGKILL); err != nil {
		return st.ChildPID, false, err
	}
	return st.ChildPID, true, nil
}

// usagePair and usageReport are the parts of the edge's GET /usage JSON
// (internal/edge/usage.go) the testbed reads.
type usagePair struct {
	Source  string `json:"source"`
	FromPID string `json:"from_pid"`
	ToPID   string `json:"to_pid"`
	Bytes   int64  `json:"bytes"`
}

type usageReport struct {
	Objects []struct {
		URL   string      `json:"url"`
		Pairs []usagePair `json:"pairs"`
	} `json:"objects"`
}

// edgeUsage is the edge's account of one crowd, as the run line carries it:
// bytes the edge sent, and the peer and cache bytes receivers reported.
type edgeUsage struct {
	EdgeBytes     int64       `json:"edge_bytes"`
	PeerBytes     int64       `json:"peer_bytes"`
	CacheBytes    int64       `json:"cache_bytes"`
	CrossPIDBytes int64       `json:"cross_pid_bytes"`
	Offload       float64     `json:"offload"`
	Pairs         []usagePair `json:"pairs"`
}

// pseudoPID reports whether a usage location is not a network location of
// the map (see internal/edge/usage.go).
func pseudoPID(p string) bool {
	return p == "edge" || p == "none" || p == "unknown" || p == "other" || p == ""
}

// usageDelta is the usage of object url between two reports (before may be
// nil: a fresh edge), totalled as the edge totals it.
func usageDelta(before, after *usageReport, url string) edgeUsage {
	sum := func(r *usageReport) map[usagePair]int64 {
		m := map[usagePair]int64{}
		if r == nil {
			return m
		}
		for _, o := range r.Objects {
			if url != "" && o.URL != url {
				continue
			}
			for _, p := range o.Pairs {
				n := p.Bytes
				p.Bytes = 0
				m[p] += n
			}
		}
		return m
	}
	a, b := sum(before), sum(after)
	var u edgeUsage
	u.Pairs = []usagePair{}
	for p, n := range b {
		n -= a[p]
		if n == 0 {
			continue
		}
		switch p.Source {
		case "edge":
			u.EdgeBytes += n
		case "cache":
			u.CacheBytes += n
		default:
			u.PeerBytes += n
		}
		if p.Source != "edge" && p.FromPID != p.ToPID && !pseudoPID(p.FromPID) && !pseudoPID(p.ToPID) {
			u.CrossPIDBytes += n
		}
		p.Bytes = n
		u.Pairs = append(u.Pairs, p)
	}
	sortPairs(u.Pairs)
	if t := u.EdgeBytes + u.PeerBytes + u.CacheBytes; t > 0 {
		u.Offload = r3(float64(u.PeerBytes+u.CacheBytes) / float64(t))
	}
	return u
}

// sortPairs orders usage pairs by source, then source and receiver location.
func sortPairs(ps []usagePair) {
	slices.SortFunc(ps, func(x, y usagePair) int {
		return cmp.Or(strings.Compare(x.Source, y.Source), strings.Compare(x.FromPID, y.FromPID), strings.Compare(x.ToPID, y.ToPID))
	})
}

// samePIDPeerShare is the share of peer bytes (source "peer", as receivers
// reported them) whose source and receiver are in one network location,
// counting only bytes between two known locations; ok is false when there
// are none (no network map, or no peer bytes).
func samePIDPeerShare(u edgeUsage) (share float64, ok bool) {
	var same, known int64
	for _, p := range u.Pairs {
		if p.Source != "peer" || pseudoPID(p.FromPID) || pseudoPID(p.ToPID) {
			continue
		}
		known += p.Bytes
		if p.FromPID == p.ToPID {
			same += p.Bytes
		}
	}
	if known <= 0 {
		return 0, false
	}
	return float64(same) / float64(known), true
}
