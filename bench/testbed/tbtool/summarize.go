//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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
	SHA256OK    bool    `json:"sha256_ok"`
	Error       string  `json:"error,omitempty"`
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

func cmdSummarize(args []string) error {
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
	l.SHA256OK = len(recs) == l.Peers
	var done []float64
	for _, r := range recs {
		l.EdgeBytes += r.EdgeBytes
		l.PeerBytes += r.PeerBytes
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
	if t := l.EdgeBytes + l.PeerBytes; t > 0 {
		l.Offload = float64(l.PeerBytes) / float64(t)
	}
	l.OK = l.Completed == l.Peers && l.SHA256OK && len(l.Errors) == 0

	if *procsFile != "" {
		b, err := os.ReadFile(*procsFile)
		if err != nil {
			return err
		}
		for _, p := range strings.Fields(string(b)) {
			var st runStats
			if err := readJSONFile(p, &st); err != nil {
				l.Errors = append(l.Errors, "cpu: "+err.Error())
				continue
			}
			if st.Running {
				l.Errors = append(l.Errors, "cpu: still running: "+p)
			}
			l.CPUS += st.UserS + st.SysS
		}
	}
	if *countersFile != "" {
		var c struct {
			Cross int64 `json:"cross_isp_bytes"`
			Edge  int64 `json:"edge_wire_bytes"`
			Peer  int64 `json:"peer_wire_up_bytes"`
		}
		if err := readJSONFile(*countersFile, &c); err != nil {
			return err
		}
		l.CrossISPBytes, l.EdgeWireBytes, l.PeerWireBytes = c.Cross, c.Edge, c.Peer
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
	return json.NewEncoder(os.Stdout).Encode(l)
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
}

func medianOf(ls []runLine, f func(runLine) float64) float64 {
	v := make([]float64, len(ls))
	for i, l := range ls {
		v[i] = f(l)
	}
	slices.Sort(v)
	return median(v)
}

// aggregate reads run lines and prints one median line per system (over its
// OK runs, or all runs if none was OK) and the summary line.
func cmdAggregate(args []string) error {
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
	enc := json.NewEncoder(os.Stdout)
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
	return enc.Encode(sum)
}
