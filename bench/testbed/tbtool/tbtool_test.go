//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
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

func TestChurnPlan(t *testing.T) {
	plan, err := churnPlan(20, 0.5, 21.475, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 10 {
		t.Fatalf("%d victims of 20 at 0.5, want 10", len(plan))
	}
	seen := map[int]bool{}
	for i, k := range plan {
		if k.Peer < 0 || k.Peer >= 20 || seen[k.Peer] {
			t.Errorf("victim %d: peer %d (twice or out of range)", i, k.Peer)
		}
		seen[k.Peer] = true
		if k.AtS < 0.05*21.475 || k.AtS > 0.80*21.475 {
			t.Errorf("peer %d killed at %.3f s, outside [5 %%, 80 %%] of 21.475 s", k.Peer, k.AtS)
		}
		if i > 0 && k.AtS < plan[i-1].AtS {
			t.Errorf("plan not sorted by time at %d", i)
		}
	}
	again, _ := churnPlan(20, 0.5, 21.475, 7)
	if !reflect.DeepEqual(plan, again) {
		t.Error("the same seed gave another plan")
	}
	other, _ := churnPlan(20, 0.5, 21.475, 8)
	if reflect.DeepEqual(plan, other) {
		t.Error("another seed gave the same plan")
	}
	// One peer always survives; a fraction that rounds to nobody kills nobody.
	if p, _ := churnPlan(2, 0.99, 10, 1); len(p) != 1 {
		t.Errorf("2 peers at 0.99: %d victims, want 1", len(p))
	}
	if p, _ := churnPlan(4, 0.2, 10, 1); len(p) != 0 {
		t.Errorf("4 peers at 0.2: %d victims, want 0", len(p))
	}
	for _, bad := range []float64{-0.1, 1, 1.5, math.NaN()} {
		if _, err := churnPlan(20, bad, 10, 1); err == nil {
			t.Errorf("churn %v accepted", bad)
		}
	}
}

// usageJSON is an edge's GET /usage answer with the given pairs of /file.bin.
func usageJSON(pairs ...usagePair) string {
	b, _ := json.Marshal(map[string]any{"objects": []any{map[string]any{"url": "/file.bin", "root": "ab", "pairs": pairs}},
		"total": map[string]any{}})
	return string(b)
}

func TestUsageDelta(t *testing.T) {
	before := usageReport{}
	json.Unmarshal([]byte(usageJSON(
		usagePair{"edge", "edge", "isp-a", 1000}, // pre-positioning: to the caches
		usagePair{"edge", "edge", "isp-b", 1000},
	)), &before)
	var after usageReport
	json.Unmarshal([]byte(usageJSON(
		usagePair{"edge", "edge", "isp-a", 1300},
		usagePair{"edge", "edge", "isp-b", 1000},
		usagePair{"cache", "isp-a", "isp-a", 5000},
		usagePair{"peer", "isp-a", "isp-a", 800},
		usagePair{"peer", "isp-b", "isp-b", 100},
		usagePair{"peer", "isp-a", "isp-b", 100},
		usagePair{"peer", "unknown", "isp-b", 50}, // a source the edge does not know: not across, not counted in the share
	)), &after)
	u := usageDelta(&before, &after, "/file.bin")
	if u.EdgeBytes != 300 || u.CacheBytes != 5000 || u.PeerBytes != 1050 || u.CrossPIDBytes != 100 {
		t.Fatalf("delta %+v", u)
	}
	if len(u.Pairs) != 6 || u.Pairs[0].Source != "cache" {
		t.Errorf("pairs %+v: want the 6 that moved, sorted by source", u.Pairs)
	}
	if math.Abs(u.Offload-r3(6050.0/6350)) > 1e-9 {
		t.Errorf("offload %v", u.Offload)
	}
	share, ok := samePIDPeerShare(u)
	if !ok || math.Abs(share-0.9) > 1e-9 {
		t.Errorf("same-PID share %v %v, want 0.9 (900 of 1000 known peer bytes)", share, ok)
	}
	// No network map: every location is "none", nothing to measure.
	var flat usageReport
	json.Unmarshal([]byte(usageJSON(usagePair{"edge", "edge", "none", 10}, usagePair{"peer", "none", "none", 90})), &flat)
	u = usageDelta(nil, &flat, "")
	if _, ok := samePIDPeerShare(u); ok || u.CrossPIDBytes != 0 || u.PeerBytes != 90 {
		t.Errorf("without a map: %+v, share measurable %v", u, ok)
	}
	// Another object's bytes are left out.
	if u := usageDelta(nil, &after, "/other.bin"); u.EdgeBytes+u.PeerBytes+u.CacheBytes != 0 {
		t.Errorf("another object: %+v", u)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSummarizeScenario: churn victims leave the completion figures and ok;
// managed bytes count as offload; the edge usage and the counters give the
// location figures.
func TestSummarizeScenario(t *testing.T) {
	dir := t.TempDir()
	peers := writeFile(t, dir, "peers.jsonl", strings.Join([]string{
		`{"peer":0,"isp":"a","done":true,"completion_s":10,"edge_bytes":100,"peer_bytes":200,"managed_bytes":700,"sha256_ok":true}`,
		`{"peer":1,"isp":"b","done":true,"completion_s":12,"edge_bytes":100,"peer_bytes":200,"managed_bytes":700,"sha256_ok":true}`,
		`{"peer":2,"isp":"a","done":false,"completion_s":0,"edge_bytes":0,"peer_bytes":0,"sha256_ok":false,"error":"no result (killed by signal: killed)"}`,
		`{"peer":3,"isp":"b","done":true,"completion_s":3,"edge_bytes":0,"peer_bytes":1000,"managed_bytes":0,"sha256_ok":true}`,
	}, "\n"))
	plan := writeFile(t, dir, "plan.jsonl", `{"peer":2,"at_s":1.5}`+"\n"+`{"peer":3,"at_s":4}`+"\n")
	churnLog := writeFile(t, dir, "churn.jsonl", `{"peer":2,"at_s":1.5,"killed_s":1.51,"was_running":true}`+"\n"+
		`{"peer":3,"at_s":4,"killed_s":4.0,"was_running":true}`+"\n")
	counters := writeFile(t, dir, "counters.json", `{"cross_isp_bytes":100,"same_isp_bytes":900,"edge_wire_bytes":5,"peer_wire_up_bytes":6,"cache_wire_up_bytes":7}`)
	after := writeFile(t, dir, "after.json", usageJSON(usagePair{"edge", "edge", "isp-a", 200}, usagePair{"cache", "isp-a", "isp-a", 1400},
		usagePair{"peer", "isp-a", "isp-a", 300}, usagePair{"peer", "isp-b", "isp-a", 100}))
	prepos := writeFile(t, dir, "prepos.json", `{"preposition_s":6.25}`)
	var out bytes.Buffer
	err := summarize([]string{"--system", "edgeswarm", "--peers", "4", "--file-bytes", "1000", "--edge-up", "100", "--peer-up", "20",
		"--peer-down", "100", "--peers-file", peers, "--counters", counters, "--pids", "2", "--cross-pid", "deny",
		"--managed", "2", "--managed-up", "200", "--churn", "0.5", "--seed", "3", "--churn-plan", plan, "--churn-log", churnLog,
		"--usage-after", after, "--usage-url", "/file.bin", "--preposition", prepos}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var l runLine
	if err := json.Unmarshal(out.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	if l.Killed != 2 || l.Survivors != 2 || l.KilledAfterCompleting != 1 || !reflect.DeepEqual(l.KilledPeers, []int{2, 3}) {
		t.Errorf("killed %d survivors %d after completing %d peers %v", l.Killed, l.Survivors, l.KilledAfterCompleting, l.KilledPeers)
	}
	if !l.OK || l.Completed != 2 || l.Completion.Max != 12 || l.Completion.Min != 10 || len(l.Errors) != 0 {
		t.Errorf("ok %v completed %d completion %+v errors %v: want the survivors' (peers 0 and 1)", l.OK, l.Completed, l.Completion, l.Errors)
	}
	if l.BytesFromManaged != 1400 || l.EdgeBytes != 200 || l.PeerBytes != 1400 || l.Offload != 0.933 {
		t.Errorf("managed %d edge %d peer %d offload %v", l.BytesFromManaged, l.EdgeBytes, l.PeerBytes, l.Offload)
	}
	if l.SameISPBytes != 900 || l.SameISPShare == nil || *l.SameISPShare != 0.9 || l.CacheWireBytes != 7 {
		t.Errorf("same ISP %d share %v cache wire %d", l.SameISPBytes, l.SameISPShare, l.CacheWireBytes)
	}
	if l.EdgeUsage == nil || l.EdgeUsage.CacheBytes != 1400 || l.EdgeUsage.CrossPIDBytes != 100 ||
		l.SamePIDPeerShare == nil || *l.SamePIDPeerShare != 0.75 {
		t.Errorf("edge usage %+v same-PID share %v", l.EdgeUsage, l.SamePIDPeerShare)
	}
	if l.PrePositionS == nil || *l.PrePositionS != 6.25 || l.PIDs != 2 || l.CrossPID != "deny" || l.Managed != 2 || l.Churn != 0.5 || l.Seed != 3 {
		t.Errorf("scenario fields: %s", out.String())
	}

	// A survivor that failed makes the run not ok; a killer's error is reported.
	peers2 := writeFile(t, dir, "peers2.jsonl", strings.Replace(readFile(t, peers), `"peer":1,"isp":"b","done":true`, `"peer":1,"isp":"b","done":false`, 1))
	out.Reset()
	log2 := writeFile(t, dir, "churn2.jsonl", `{"peer":2,"at_s":1.5,"killed_s":1.51,"was_running":false,"error":"pid 9 runs \"x\""}`+"\n")
	if err := summarize([]string{"--system", "cdn", "--peers", "4", "--file-bytes", "1000", "--edge-up", "100", "--peer-up", "20",
		"--peer-down", "100", "--peers-file", peers2, "--churn-plan", plan, "--churn-log", log2}, &out); err != nil {
		t.Fatal(err)
	}
	l = runLine{}
	json.Unmarshal(out.Bytes(), &l)
	if l.OK || l.Completed != 1 || len(l.Errors) != 1 || l.EdgeUsage != nil || l.PrePositionS != nil {
		t.Errorf("ok %v completed %d errors %v usage %v prepos %v", l.OK, l.Completed, l.Errors, l.EdgeUsage, l.PrePositionS)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAggregateScenario: the median line carries every scenario field, and
// the summary line the scenario and its notes.
func TestAggregateScenario(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i, v := range []struct {
		cross, share, prepos float64
		cache                int64
	}{{10, 0.80, 9, 900}, {30, 0.90, 11, 1000}, {20, 0.85, 10, 1100}} {
		l := runLine{Type: "run", System: "edgeswarm", Run: i + 1, Peers: 4, FileBytes: 1000, OK: true, SHA256OK: true,
			PIDs: 2, CrossPID: "allow", Managed: 2, ManagedUpMbit: 200, Churn: 0.5, Seed: 1,
			CrossISPBytes: int64(v.cross), SamePIDPeerShare: &v.share, PrePositionS: &v.prepos, BytesFromManaged: v.cache,
			Killed: 2, Survivors: 2, KilledAfterCompleting: i % 2,
			EdgeUsage: &edgeUsage{CacheBytes: v.cache, Pairs: []usagePair{{"cache", "isp-a", "isp-a", v.cache}}}}
		if i == 2 {
			l.EdgeUsage.Pairs = append(l.EdgeUsage.Pairs, usagePair{"peer", "isp-a", "isp-b", 5})
		}
		b, _ := json.Marshal(l)
		lines = append(lines, string(b))
		c := runLine{Type: "run", System: "cdn", Run: i + 1, Peers: 4, FileBytes: 1000, OK: true, SHA256OK: true,
			PIDs: 2, CrossPID: "allow", Managed: 2, ManagedUpMbit: 200, Churn: 0.5, Seed: 1, Killed: 2, Survivors: 2}
		b, _ = json.Marshal(c)
		lines = append(lines, string(b))
	}
	in := writeFile(t, dir, "results.jsonl", strings.Join(lines, "\n")+"\n")
	var out bytes.Buffer
	if err := aggregate([]string{in}, &out); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	var sum map[string]any
	for _, s := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == "summary" {
			sum = m
			continue
		}
		got[m["system"].(string)] = m
	}
	es := got["edgeswarm"]
	for _, f := range []string{"pids", "cross_pid", "same_isp_bytes", "same_pid_peer_share", "edge_usage", "managed", "managed_up_mbit",
		"bytes_from_managed", "preposition_s", "cache_wire_up_bytes", "managed_cpu_s", "churn", "seed", "killed",
		"killed_after_completing", "survivors"} {
		if _, ok := es[f]; !ok {
			t.Errorf("median line: %s missing", f)
		}
	}
	if es["cross_isp_bytes"] != 20.0 || es["same_pid_peer_share"] != 0.85 || es["preposition_s"] != 10.0 || es["bytes_from_managed"] != 1000.0 ||
		es["killed"] != 2.0 || es["survivors"] != 2.0 || es["cross_pid"] != "allow" || es["managed"] != 2.0 {
		t.Errorf("medians: %v", es)
	}
	u := es["edge_usage"].(map[string]any)
	pairs := u["pairs"].([]any)
	if u["cache_bytes"] != 1000.0 || len(pairs) != 2 || pairs[1].(map[string]any)["bytes"] != 0.0 {
		t.Errorf("edge_usage median %v (a pair seen in one run of three has median 0)", u)
	}
	if _, ok := got["cdn"]["edge_usage"]; ok {
		t.Error("cdn has no edge usage, yet its median line has one")
	}
	if _, ok := got["cdn"]["preposition_s"]; ok {
		t.Error("cdn has no caches, yet its median line has preposition_s")
	}
	sc := sum["scenario"].(map[string]any)
	if sc["pids"] != 2.0 || sc["managed"] != 2.0 || sc["churn"] != 0.5 || len(sum["notes"].([]any)) != 3 {
		t.Errorf("summary %v", sum)
	}
}

// TestKillPeer kills a real process named by a stats file, and refuses one
// whose PID now runs another program.
func TestKillPeer(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	cmd := exec.Command(sleep, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()
	dir := t.TempDir()
	stats := filepath.Join(dir, "p0.stats")
	wrong := filepath.Join(dir, "p1.stats")
	writeJSONFile(wrong, runStats{Running: true, Cmd: []string{"/not/sleep"}, ChildPID: cmd.Process.Pid})
	if _, alive, err := killPeer(wrong); err == nil || alive {
		t.Fatalf("another program's PID: alive %v err %v", alive, err)
	}
	writeJSONFile(stats, runStats{Running: true, Cmd: []string{sleep, "30"}, ChildPID: cmd.Process.Pid})
	pid, alive, err := killPeer(stats)
	if err != nil || !alive || pid != cmd.Process.Pid {
		t.Fatalf("pid %d alive %v err %v", pid, alive, err)
	}
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("sleep ended with %v, want SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sleep still runs 10 s after its SIGKILL")
	}
	// Done already: nothing to kill.
	writeJSONFile(stats, runStats{Running: false, Cmd: []string{sleep, "30"}, ChildPID: cmd.Process.Pid})
	if _, alive, err := killPeer(stats); err != nil || alive {
		t.Errorf("a finished process: alive %v err %v", alive, err)
	}
}
