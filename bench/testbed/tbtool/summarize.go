//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/fluid"
)

func nowNS() int64 { return time.Now().UnixNano() }

// peerRecord is one line of a system run's peers.jsonl, written by the
// system's script (bench/testbed/systems/*.sh).
type peerRecord struct {
	Peer        int     `json:"peer"`
	ISP         string  `json:"isp"`
	Done        bool    `json:"done"`
	CompletionS float64 `json:"completion_s"`
	EdgeBytes   int64   `json:"edge_bytes"`
	PeerBytes   int64   `json:"peer_bytes"`
	// ManagedBytes came from managed caches (edgeswarm get's bytes_from_managed).
	ManagedBytes int64  `json:"managed_bytes"`
	SHA256OK     bool   `json:"sha256_ok"`
	Error        string `json:"error,omitempty"`
}

type completion struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

type machineCPU struct {
	WallS    float64 `json:"wall_s"`
	BusyFrac float64 `json:"busy_frac"` // of all cores
	UserS    float64 `json:"user_s"`
	SystemS  float64 `json:"system_s"`
	SoftirqS float64 `json:"softirq_s"`
}

// runLine is one JSON line of the testbed's output: a system's run ("run"),
// or the median over runs ("median").
type runLine struct {
	Type          string          `json:"type"`
	System        string          `json:"system"`
	Run           int             `json:"run,omitempty"`
	Runs          int             `json:"runs,omitempty"`
	Peers         int             `json:"peers"`
	FileBytes     int64           `json:"file_bytes"`
	EdgeUpMbit    float64         `json:"edge_up_mbit"`
	PeerUpMbit    float64         `json:"peer_up_mbit"`
	PeerDownMbit  float64         `json:"peer_down_mbit"`
	RTTMs         float64         `json:"rtt_ms"`
	RTTSetMs      float64         `json:"rtt_set_ms"`
	Completion    completion      `json:"completion_s"`
	FluidBoundS   float64         `json:"fluid_bound_s"`
	RatioToBound  float64         `json:"ratio_to_bound"`
	EdgeBytes     int64           `json:"edge_bytes"`
	PeerBytes     int64           `json:"peer_bytes"`
	Offload       float64         `json:"offload"`
	OffloadLimit  float64         `json:"offload_limit"`
	CrossISPBytes int64           `json:"cross_isp_bytes"`
	CPUS          float64         `json:"cpu_s"`
	OK            bool            `json:"ok"`
	Completed     int             `json:"completed"`
	SHA256OK      bool            `json:"sha256_ok"`
	EdgeWireBytes int64           `json:"edge_wire_bytes"`
	PeerWireBytes int64           `json:"peer_wire_up_bytes"`
	DelaylineCPUS float64         `json:"delayline_cpu_s"`
	DelayLateMs   float64         `json:"delayline_late_ms"` // mean extra one-way delay per delayed packet
	DelayPackets  uint64          `json:"delayline_packets"`
	Machine       machineCPU      `json:"machine_cpu"`
	CPUBound      bool            `json:"cpu_bound"` // the machine was >= 90 % busy: the figures are CPU-limited
	BoundRates    string          `json:"bound_rates"`
	PerPeerS      []float64       `json:"per_peer_s,omitempty"`
	Settings      json.RawMessage `json:"settings,omitempty"`
	Errors        []string        `json:"errors,omitempty"`

	// Network locations (run.sh --pids, --cross-pid). SameISPBytes: bytes the
	// core forwarded between two addresses of one ISP (peers and managed
	// caches; headers included), the same-ISP counterpart of CrossISPBytes;
	// SameISPShare = same / (same + cross), the wire's view. SamePIDPeerShare
	// is the peers' own view: of the peer bytes receivers reported to the edge
	// between two known locations, the share inside one (absent when not
	// measurable: no network map, no peer bytes). EdgeUsage is the edge's
	// GET /usage account of the crowd (edgeswarm only).
	PIDs             int        `json:"pids"`
	CrossPID         string     `json:"cross_pid"`
	SameISPBytes     int64      `json:"same_isp_bytes"`
	SameISPShare     *float64   `json:"same_isp_share,omitempty"`
	SamePIDPeerShare *float64   `json:"same_pid_peer_share,omitempty"`
	EdgeUsage        *edgeUsage `json:"edge_usage,omitempty"`
	// Managed caches (--managed, --managed-up): bytes the crowd took from
	// them (the peers' count), how long pre-positioning took before the
	// crowd (absent where there are no caches), the caches' bytes on the
	// wire during the crowd and their CPU (pre-positioning included). The
	// fluid bound is the plain one (edge + peers): caches add capacity.
	Managed          int      `json:"managed"`
	ManagedUpMbit    float64  `json:"managed_up_mbit"`
	BytesFromManaged int64    `json:"bytes_from_managed"`
	PrePositionS     *float64 `json:"preposition_s,omitempty"`
	CacheWireBytes   int64    `json:"cache_wire_up_bytes"`
	ManagedCPUS      float64  `json:"managed_cpu_s"`
	// Churn (--churn, --seed): the planned victims (all of them count as
	// killed, also those done before their moment: KilledAfterCompleting);
	// completion, Completed and OK are the survivors'.
	Churn                 float64 `json:"churn"`
	Seed                  uint64  `json:"seed"`
	Killed                int     `json:"killed"`
	KilledAfterCompleting int     `json:"killed_after_completing"`
	Survivors             int     `json:"survivors"`
	KilledPeers           []int   `json:"killed_peers,omitempty"`
}

const boundRatesNote = "configured rates, not scaled by 0.95 for headers (a perfect system scores ~1.05)"

// fluidBound is the project's fluid bound (internal/fluid) for rates in
// Mbit/s (10^6 bit/s), with its offload limit.
func fluidBound(n int, fileBytes int64, edgeUp, peerUp, peerDown float64) (bound, offloadLimit float64) {
	bound = fluid.Bound(n, fileBytes, edgeUp*1e6, peerUp*1e6, peerDown*1e6)
	return bound, fluid.OffloadLimit(n, fileBytes, edgeUp*1e6, bound)
}

func readJSONLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] != '{' {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func cmdSummarize(args []string) error { return summarize(args, os.Stdout) }

// summarize writes one system run's line to w.
func summarize(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("summarize", flag.ContinueOnError)
	var l runLine
	fs.StringVar(&l.System, "system", "", "system name")
	fs.IntVar(&l.Run, "run", 1, "run number")
	fs.IntVar(&l.Peers, "peers", 0, "peers")
	size := fs.String("file-bytes", "0", "file size")
	fs.Float64Var(&l.EdgeUpMbit, "edge-up", 0, "edge upload, Mbit/s")
	fs.Float64Var(&l.PeerUpMbit, "peer-up", 0, "peer upload, Mbit/s")
	fs.Float64Var(&l.PeerDownMbit, "peer-down", 0, "peer download, Mbit/s")
	fs.Float64Var(&l.RTTMs, "rtt-ms", 0, "measured RTT")
	fs.Float64Var(&l.RTTSetMs, "rtt-set-ms", 0, "configured RTT")
	peersFile := fs.String("peers-file", "", "peers.jsonl")
	procsFile := fs.String("procs-file", "", "file listing the system's `tbtool run` stats files, one a line")
	countersFile := fs.String("counters", "", "JSON {cross_isp_bytes, edge_wire_bytes, peer_wire_up_bytes}")
	cpuBefore := fs.String("cpu-before", "", "cpusnap before the run (delay line PIDs in it)")
	cpuAfter := fs.String("cpu-after", "", "cpusnap after the run")
	settings := fs.String("settings", "", "system settings file (JSON), copied into the line")
	totals := fs.String("totals", "", "JSON {edge_bytes, peer_bytes}: system-level byte totals that replace the sums of the peer records")
	dlBefore := fs.String("delayline-before", "", "the delay lines' stats (JSON lines) before the run")
	dlAfter := fs.String("delayline-after", "", "the delay lines' stats (JSON lines) after the run")
	fs.IntVar(&l.PIDs, "pids", 1, "network locations (1: no network map)")
	fs.StringVar(&l.CrossPID, "cross-pid", "allow", "the edge's cross-PID mode")
	fs.IntVar(&l.Managed, "managed", 0, "managed caches")
	fs.Float64Var(&l.ManagedUpMbit, "managed-up", 0, "managed cache link rate, Mbit/s")
	fs.Float64Var(&l.Churn, "churn", 0, "fraction of the peers killed")
	fs.Uint64Var(&l.Seed, "seed", 1, "seed of the churn plan")
	churnPlanFile := fs.String("churn-plan", "", "the churn plan (JSON lines {peer, at_s}): its peers are the victims")
	churnLog := fs.String("churn-log", "", "the killer's log (JSON lines)")
	usageBefore := fs.String("usage-before", "", "the edge's GET /usage at the crowd's start (absent: a fresh edge)")
	usageAfter := fs.String("usage-after", "", "the edge's GET /usage after the crowd")
	usageURL := fs.String("usage-url", "", "the object's path in the usage (empty: every object)")
	prepos := fs.String("preposition", "", "JSON {preposition_s}: the managed caches' pre-positioning")
	cacheProcs := fs.String("cache-procs-file", "", "like --procs-file, for the managed caches")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if l.FileBytes, err = parseSize(*size); err != nil {
		return err
	}
	if l.System == "" || l.Peers <= 0 || l.FileBytes <= 0 || l.EdgeUpMbit <= 0 || l.PeerUpMbit <= 0 || l.PeerDownMbit <= 0 {
		return errors.New("need --system, --peers, --file-bytes and the three rates")
	}
	l.Type = "run"
	l.BoundRates = boundRatesNote
	l.FluidBoundS, l.OffloadLimit = fluidBound(l.Peers, l.FileBytes, l.EdgeUpMbit, l.PeerUpMbit, l.PeerDownMbit)

	recs, err := readJSONLines[peerRecord](*peersFile)
	if err != nil {
		return err
	}
	victims := map[int]bool{}
	if *churnPlanFile != "" {
		plan, err := readJSONLines[kill](*churnPlanFile)
		if err != nil {
			return err
		}
		for _, k := range plan {
			victims[k.Peer] = true
			l.KilledPeers = append(l.KilledPeers, k.Peer)
		}
		slices.Sort(l.KilledPeers)
	}
	if *churnLog != "" {
		log, err := readJSONLines[killRecord](*churnLog)
		if err != nil {
			l.Errors = append(l.Errors, "churn log: "+err.Error())
		}
		for _, k := range log {
			if k.KillError != "" {
				l.Errors = append(l.Errors, fmt.Sprintf("churn: peer %d: %s", k.Peer, k.KillError))
			}
		}
	}
	l.Killed = len(victims)
	l.Survivors = l.Peers - l.Killed
	l.SHA256OK = len(recs) == l.Peers
	var done []float64
	for _, r := range recs {
		l.EdgeBytes += r.EdgeBytes
		l.PeerBytes += r.PeerBytes
		l.BytesFromManaged += r.ManagedBytes
		if victims[r.Peer] {
			// A victim's figures are not the crowd's; its bytes, if it
			// reported them, are.
			if r.Done {
				l.KilledAfterCompleting++
				if !r.SHA256OK {
					l.SHA256OK = false
					l.Errors = append(l.Errors, fmt.Sprintf("peer %d (killed after completing): %s", r.Peer, r.Error))
				}
			}
			continue
		}
		if r.Done {
			done = append(done, r.CompletionS)
		}
		if !r.SHA256OK {
			l.SHA256OK = false
		}
		if r.Error != "" {
			l.Errors = append(l.Errors, fmt.Sprintf("peer %d: %s", r.Peer, r.Error))
		}
	}
	if len(recs) != l.Peers {
		l.Errors = append(l.Errors, fmt.Sprintf("%d peer records for %d peers", len(recs), l.Peers))
	}
	slices.Sort(done)
	l.Completed = len(done)
	l.PerPeerS = done
	if len(done) > 0 {
		l.Completion = completion{Min: done[0], Median: median(done), Max: done[len(done)-1]}
		l.RatioToBound = l.Completion.Max / l.FluidBoundS
	}
	if *totals != "" {
		var t struct {
			Edge *int64 `json:"edge_bytes"`
			Peer *int64 `json:"peer_bytes"`
		}
		if err := readJSONFile(*totals, &t); err != nil {
			l.Errors = append(l.Errors, "totals: "+err.Error())
		} else if t.Edge != nil && t.Peer != nil {
			l.EdgeBytes, l.PeerBytes = *t.Edge, *t.Peer
		}
	}
	if t := l.EdgeBytes + l.PeerBytes + l.BytesFromManaged; t > 0 {
		l.Offload = float64(l.PeerBytes+l.BytesFromManaged) / float64(t)
	}
	l.OK = l.Completed == l.Survivors && l.SHA256OK && len(l.Errors) == 0

	if l.CPUS, err = procsCPU(*procsFile, &l.Errors); err != nil {
		return err
	}
	if l.ManagedCPUS, err = procsCPU(*cacheProcs, &l.Errors); err != nil {
		return err
	}
	if *countersFile != "" {
		var c struct {
			Cross int64 `json:"cross_isp_bytes"`
			Same  int64 `json:"same_isp_bytes"`
			Edge  int64 `json:"edge_wire_bytes"`
			Peer  int64 `json:"peer_wire_up_bytes"`
			Cache int64 `json:"cache_wire_up_bytes"`
		}
		if err := readJSONFile(*countersFile, &c); err != nil {
			return err
		}
		l.CrossISPBytes, l.EdgeWireBytes, l.PeerWireBytes = c.Cross, c.Edge, c.Peer
		l.SameISPBytes, l.CacheWireBytes = c.Same, c.Cache
		if t := c.Same + c.Cross; t > 0 {
			v := float64(c.Same) / float64(t)
			l.SameISPShare = &v
		}
	}
	if *usageAfter != "" {
		var before, after *usageReport
		if *usageBefore != "" {
			before = new(usageReport)
			if err := readJSONFile(*usageBefore, before); err != nil {
				l.Errors = append(l.Errors, "usage before the crowd: "+err.Error())
				before = nil
			}
		}
		after = new(usageReport)
		if err := readJSONFile(*usageAfter, after); err != nil {
			l.Errors = append(l.Errors, "usage after the crowd: "+err.Error())
		} else {
			u := usageDelta(before, after, *usageURL)
			l.EdgeUsage = &u
			if v, ok := samePIDPeerShare(u); ok {
				l.SamePIDPeerShare = &v
			}
		}
	}
	if *prepos != "" {
		var p struct {
			S *float64 `json:"preposition_s"`
		}
		if err := readJSONFile(*prepos, &p); err != nil {
			l.Errors = append(l.Errors, "pre-positioning: "+err.Error())
		} else if p.S == nil {
			l.Errors = append(l.Errors, "pre-positioning did not finish")
		} else {
			l.PrePositionS = p.S
		}
	}
	if *cpuBefore != "" && *cpuAfter != "" {
		var a, b cpuSnap
		if err := readJSONFile(*cpuBefore, &a); err != nil {
			return err
		}
		if err := readJSONFile(*cpuAfter, &b); err != nil {
			return err
		}
		for pid, v := range b.PIDs {
			l.DelaylineCPUS += v - a.PIDs[pid]
		}
		var total, idle float64
		for _, k := range statFields {
			total += b.Stat[k] - a.Stat[k]
		}
		idle = b.Stat["idle"] - a.Stat["idle"] + b.Stat["iowait"] - a.Stat["iowait"]
		l.Machine = machineCPU{WallS: float64(b.TimeNS-a.TimeNS) / 1e9,
			UserS:    b.Stat["user"] - a.Stat["user"] + b.Stat["nice"] - a.Stat["nice"],
			SystemS:  b.Stat["system"] - a.Stat["system"],
			SoftirqS: b.Stat["softirq"] - a.Stat["softirq"] + b.Stat["irq"] - a.Stat["irq"]}
		if total > 0 {
			l.Machine.BusyFrac = (total - idle) / total
		}
		l.CPUBound = l.Machine.BusyFrac >= 0.9
	}
	if *dlBefore != "" && *dlAfter != "" {
		if late, n, err := delayLate(*dlBefore, *dlAfter); err == nil {
			l.DelayLateMs, l.DelayPackets = late, n
		} else {
			l.Errors = append(l.Errors, "delay line stats: "+err.Error())
		}
	}
	if *settings != "" {
		b, err := os.ReadFile(*settings)
		if err != nil {
			return err
		}
		if json.Valid(b) {
			l.Settings = json.RawMessage(strings.TrimSpace(string(b)))
		}
	}
	round(&l)
	return json.NewEncoder(w).Encode(l)
}

// procsCPU sums the CPU of the `tbtool run` stats files listed in path
// (none if path is ""); problems with one file are appended to errs.
func procsCPU(path string, errs *[]string) (float64, error) {
	if path == "" {
		return 0, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, p := range strings.Fields(string(b)) {
		var st runStats
		if err := readJSONFile(p, &st); err != nil {
			*errs = append(*errs, "cpu: "+err.Error())
			continue
		}
		if st.Running {
			*errs = append(*errs, "cpu: still running: "+p)
		}
		sum += st.UserS + st.SysS
	}
	return sum, nil
}

type dlStats struct {
	Pid    int `json:"pid"`
	Queues []struct {
		Queue      int     `json:"queue"`
		DelayMs    float64 `json:"delay_ms"`
		Packets    uint64  `json:"packets"`
		DelaySumMs float64 `json:"delay_sum_ms"`
	} `json:"queues"`
}

// delayLate is the mean delay the delay lines added beyond the configured one
// to the packets they released between two snapshots of their stats.
func delayLate(before, after string) (float64, uint64, error) {
	a, err := readJSONLines[dlStats](before)
	if err != nil {
		return 0, 0, err
	}
	b, err := readJSONLines[dlStats](after)
	if err != nil {
		return 0, 0, err
	}
	type key struct{ pid, q int }
	type val struct {
		n   uint64
		sum float64
	}
	prev := map[key]val{}
	for _, s := range a {
		for _, q := range s.Queues {
			prev[key{s.Pid, q.Queue}] = val{q.Packets, q.DelaySumMs}
		}
	}
	var n uint64
	var extra float64
	for _, s := range b {
		for _, q := range s.Queues {
			p := prev[key{s.Pid, q.Queue}]
			dn := q.Packets - p.n
			n += dn
			extra += (q.DelaySumMs - p.sum) - float64(dn)*q.DelayMs
		}
	}
	if n == 0 {
		return 0, 0, nil
	}
	return extra / float64(n), n, nil
}

func r3(v float64) float64 { return math.Round(v*1000) / 1000 }

func round(l *runLine) {
	l.RTTMs = r3(l.RTTMs)
	l.Completion = completion{r3(l.Completion.Min), r3(l.Completion.Median), r3(l.Completion.Max)}
	l.FluidBoundS, l.RatioToBound = r3(l.FluidBoundS), r3(l.RatioToBound)
	l.Offload, l.OffloadLimit = r3(l.Offload), r3(l.OffloadLimit)
	l.CPUS, l.DelaylineCPUS, l.DelayLateMs = r3(l.CPUS), r3(l.DelaylineCPUS), r3(l.DelayLateMs)
	l.Machine = machineCPU{r3(l.Machine.WallS), r3(l.Machine.BusyFrac), r3(l.Machine.UserS), r3(l.Machine.SystemS), r3(l.Machine.SoftirqS)}
	for i, v := range l.PerPeerS {
		l.PerPeerS[i] = r3(v)
	}
	l.ManagedCPUS = r3(l.ManagedCPUS)
	for _, p := range []**float64{&l.SameISPShare, &l.SamePIDPeerShare, &l.PrePositionS} {
		if *p != nil {
			v := r3(**p)
			*p = &v
		}
	}
}

// summaryLine compares the systems' median max completion times.
type summaryLine struct {
	Type                    string             `json:"type"`
	Systems                 []string           `json:"systems"`
	MaxCompletionS          map[string]float64 `json:"max_completion_s"`
	EdgeswarmVsBittorrent   *float64           `json:"edgeswarm_vs_bittorrent,omitempty"`
	EdgeswarmVsTransmission *float64           `json:"edgeswarm_vs_transmission,omitempty"`
	EdgeswarmVsCDN          *float64           `json:"edgeswarm_vs_cdn,omitempty"`
	AllOK                   bool               `json:"all_ok"`
	// Scenario is the runs' network locations, managed caches and churn.
	Scenario scenario `json:"scenario"`
	// Notes say how to read the figures of this scenario.
	Notes []string `json:"notes,omitempty"`
}

type scenario struct {
	PIDs          int     `json:"pids"`
	CrossPID      string  `json:"cross_pid"`
	Managed       int     `json:"managed"`
	ManagedUpMbit float64 `json:"managed_up_mbit"`
	Churn         float64 `json:"churn"`
	Seed          uint64  `json:"seed"`
}

// scenarioNotes explains the figures of a scenario.
func scenarioNotes(sc scenario) []string {
	var n []string
	if sc.PIDs > 1 {
		n = append(n, "cross_isp_bytes and same_isp_bytes are the core router's iptables counts (both directions, headers and control traffic included); "+
			"edge_usage.cross_pid_bytes and same_pid_peer_share are the peers' own reports to the edge (chunk payload only)")
	}
	if sc.Managed > 0 {
		n = append(n, fmt.Sprintf("the fluid bound counts the edge and the peers only: the %d managed caches add %g Mbit/s of upload capacity, so a ratio below 1 is possible; "+
			"edge_bytes and the counters cover the crowd, not the pre-positioning (preposition_s)", sc.Managed, float64(sc.Managed)*sc.ManagedUpMbit))
	}
	if sc.Churn > 0 {
		n = append(n, "completion_s, completed and ok are the survivors'; the victims are the same peers at the same moments for every system of a run")
	}
	return n
}

func medianOf(ls []runLine, f func(runLine) float64) float64 {
	v := make([]float64, len(ls))
	for i, l := range ls {
		v[i] = f(l)
	}
	slices.Sort(v)
	return median(v)
}

// medianPtr is the median of the runs' values that are present; nil if none is.
func medianPtr(ls []runLine, f func(runLine) *float64) *float64 {
	var v []float64
	for _, l := range ls {
		if p := f(l); p != nil {
			v = append(v, *p)
		}
	}
	if len(v) == 0 {
		return nil
	}
	slices.Sort(v)
	m := median(v)
	return &m
}

// medianScenario fills m's scenario fields (network locations, managed
// caches, churn) from the runs in use: settings copied, figures medians.
func medianScenario(m *runLine, use []runLine) {
	f := use[0]
	m.PIDs, m.CrossPID, m.Managed, m.ManagedUpMbit, m.Churn, m.Seed = f.PIDs, f.CrossPID, f.Managed, f.ManagedUpMbit, f.Churn, f.Seed
	mi := func(g func(runLine) int64) int64 {
		return int64(medianOf(use, func(l runLine) float64 { return float64(g(l)) }))
	}
	m.SameISPBytes = mi(func(l runLine) int64 { return l.SameISPBytes })
	m.SameISPShare = medianPtr(use, func(l runLine) *float64 { return l.SameISPShare })
	m.SamePIDPeerShare = medianPtr(use, func(l runLine) *float64 { return l.SamePIDPeerShare })
	m.BytesFromManaged = mi(func(l runLine) int64 { return l.BytesFromManaged })
	m.PrePositionS = medianPtr(use, func(l runLine) *float64 { return l.PrePositionS })
	m.CacheWireBytes = mi(func(l runLine) int64 { return l.CacheWireBytes })
	m.ManagedCPUS = medianOf(use, func(l runLine) float64 { return l.ManagedCPUS })
	m.Killed = int(mi(func(l runLine) int64 { return int64(l.Killed) }))
	m.KilledAfterCompleting = int(mi(func(l runLine) int64 { return int64(l.KilledAfterCompleting) }))
	m.Survivors = int(mi(func(l runLine) int64 { return int64(l.Survivors) }))
	m.EdgeUsage = medianUsage(use)
}

// medianUsage is the median of each edge usage figure over the runs that
// have one, pair by pair (a pair missing from a run counts as 0 bytes).
func medianUsage(use []runLine) *edgeUsage {
	var us []*edgeUsage
	for _, l := range use {
		if l.EdgeUsage != nil {
			us = append(us, l.EdgeUsage)
		}
	}
	if len(us) == 0 {
		return nil
	}
	med := func(g func(*edgeUsage) float64) float64 {
		v := make([]float64, len(us))
		for i, u := range us {
			v[i] = g(u)
		}
		slices.Sort(v)
		return median(v)
	}
	m := &edgeUsage{
		EdgeBytes:     int64(med(func(u *edgeUsage) float64 { return float64(u.EdgeBytes) })),
		PeerBytes:     int64(med(func(u *edgeUsage) float64 { return float64(u.PeerBytes) })),
		CacheBytes:    int64(med(func(u *edgeUsage) float64 { return float64(u.CacheBytes) })),
		CrossPIDBytes: int64(med(func(u *edgeUsage) float64 { return float64(u.CrossPIDBytes) })),
		Offload:       r3(med(func(u *edgeUsage) float64 { return u.Offload })),
		Pairs:         []usagePair{},
	}
	type key struct{ s, f, t string }
	var keys []key
	seen := map[key]bool{}
	for _, u := range us {
		for _, p := range u.Pairs {
			k := key{p.Source, p.FromPID, p.ToPID}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	for _, k := range keys {
		n := med(func(u *edgeUsage) float64 {
			for _, p := range u.Pairs {
				if (key{p.Source, p.FromPID, p.ToPID}) == k {
					return float64(p.Bytes)
				}
			}
			return 0
		})
		m.Pairs = append(m.Pairs, usagePair{k.s, k.f, k.t, int64(n)})
	}
	sortPairs(m.Pairs)
	return m
}

func cmdAggregate(args []string) error { return aggregate(args, os.Stdout) }

// aggregate reads run lines and writes to w one median line per system
// (over its OK runs, or all runs if none was OK) and the summary line.
func aggregate(args []string, w io.Writer) error {
	if len(args) != 1 {
		return errors.New("want FILE of run lines")
	}
	raw, err := readJSONLines[json.RawMessage](args[0])
	if err != nil {
		return err
	}
	var lines []runLine
	for _, r := range raw {
		var t struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(r, &t) != nil || t.Type != "run" {
			continue // testbed, skipped, median and summary lines
		}
		var l runLine
		if err := json.Unmarshal(r, &l); err != nil {
			return err
		}
		lines = append(lines, l)
	}
	var order []string
	by := map[string][]runLine{}
	for _, l := range lines {
		if l.Type != "run" {
			continue
		}
		if _, ok := by[l.System]; !ok {
			order = append(order, l.System)
		}
		by[l.System] = append(by[l.System], l)
	}
	sum := summaryLine{Type: "summary", Systems: order, MaxCompletionS: map[string]float64{}, AllOK: len(order) > 0}
	enc := json.NewEncoder(w)
	for _, sys := range order {
		all := by[sys]
		var ok []runLine
		for _, l := range all {
			if l.OK {
				ok = append(ok, l)
			} else {
				sum.AllOK = false
			}
		}
		use := ok
		if len(use) == 0 {
			use = all
		}
		f := use[0]
		m := runLine{Type: "median", System: sys, Runs: len(all), Peers: f.Peers, FileBytes: f.FileBytes,
			EdgeUpMbit: f.EdgeUpMbit, PeerUpMbit: f.PeerUpMbit, PeerDownMbit: f.PeerDownMbit, RTTSetMs: f.RTTSetMs,
			FluidBoundS: f.FluidBoundS, OffloadLimit: f.OffloadLimit, BoundRates: f.BoundRates, Settings: f.Settings,
			OK: len(ok) == len(all), SHA256OK: true}
		m.RTTMs = medianOf(use, func(l runLine) float64 { return l.RTTMs })
		m.Completion.Min = medianOf(use, func(l runLine) float64 { return l.Completion.Min })
		m.Completion.Median = medianOf(use, func(l runLine) float64 { return l.Completion.Median })
		m.Completion.Max = medianOf(use, func(l runLine) float64 { return l.Completion.Max })
		m.RatioToBound = medianOf(use, func(l runLine) float64 { return l.RatioToBound })
		m.EdgeBytes = int64(medianOf(use, func(l runLine) float64 { return float64(l.EdgeBytes) }))
		m.PeerBytes = int64(medianOf(use, func(l runLine) float64 { return float64(l.PeerBytes) }))
		m.Offload = medianOf(use, func(l runLine) float64 { return l.Offload })
		m.CrossISPBytes = int64(medianOf(use, func(l runLine) float64 { return float64(l.CrossISPBytes) }))
		m.CPUS = medianOf(use, func(l runLine) float64 { return l.CPUS })
		m.Completed = int(medianOf(use, func(l runLine) float64 { return float64(l.Completed) }))
		m.EdgeWireBytes = int64(medianOf(use, func(l runLine) float64 { return float64(l.EdgeWireBytes) }))
		m.PeerWireBytes = int64(medianOf(use, func(l runLine) float64 { return float64(l.PeerWireBytes) }))
		m.DelaylineCPUS = medianOf(use, func(l runLine) float64 { return l.DelaylineCPUS })
		m.DelayLateMs = medianOf(use, func(l runLine) float64 { return l.DelayLateMs })
		m.DelayPackets = uint64(medianOf(use, func(l runLine) float64 { return float64(l.DelayPackets) }))
		m.Machine.WallS = medianOf(use, func(l runLine) float64 { return l.Machine.WallS })
		m.Machine.BusyFrac = medianOf(use, func(l runLine) float64 { return l.Machine.BusyFrac })
		m.Machine.UserS = medianOf(use, func(l runLine) float64 { return l.Machine.UserS })
		m.Machine.SystemS = medianOf(use, func(l runLine) float64 { return l.Machine.SystemS })
		m.Machine.SoftirqS = medianOf(use, func(l runLine) float64 { return l.Machine.SoftirqS })
		m.CPUBound = m.Machine.BusyFrac >= 0.9
		medianScenario(&m, use)
		for _, l := range all {
			m.SHA256OK = m.SHA256OK && l.SHA256OK
			if !l.OK {
				m.Errors = append(m.Errors, fmt.Sprintf("run %d not ok", l.Run))
			}
		}
		round(&m)
		if err := enc.Encode(m); err != nil {
			return err
		}
		sum.MaxCompletionS[sys] = m.Completion.Max
	}
	ratio := func(a, b string) *float64 {
		x, okA := sum.MaxCompletionS[a]
		y, okB := sum.MaxCompletionS[b]
		if !okA || !okB || y <= 0 {
			return nil
		}
		v := r3(x / y)
		return &v
	}
	sum.EdgeswarmVsBittorrent = ratio("edgeswarm", "libtorrent")
	sum.EdgeswarmVsTransmission = ratio("edgeswarm", "transmission")
	sum.EdgeswarmVsCDN = ratio("edgeswarm", "cdn")
	if len(lines) > 0 {
		f := lines[0]
		sum.Scenario = scenario{f.PIDs, f.CrossPID, f.Managed, f.ManagedUpMbit, f.Churn, f.Seed}
		sum.Notes = scenarioNotes(sum.Scenario)
	}
	return enc.Encode(sum)
}
