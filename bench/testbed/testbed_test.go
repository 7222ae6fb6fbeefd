package testbed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// skipUnlessTestbed skips the test where network namespaces cannot be made
// (not root, no iproute2, `ip netns add` refused) and with -short or
// ESB_SKIP_TESTBED=1.
func skipUnlessTestbed(t *testing.T) {
	t.Helper()
	if testing.Short() || os.Getenv("ESB_SKIP_TESTBED") != "" {
		t.Skip("netns testbed smoke skipped (-short or ESB_SKIP_TESTBED set)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("netns testbed smoke: needs Linux network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("netns testbed smoke: needs root (ip netns, tc, iptables); skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netns testbed smoke: `ip` (iproute2) not found; skipped")
	}
	probe := fmt.Sprintf("esb-probe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("netns testbed smoke: `ip netns add` does not work here (%v: %s); skipped", err, bytes.TrimSpace(out))
	}
	if out, err := exec.Command("ip", "netns", "del", probe).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v: %s", probe, err, out)
	}
}

// runTestbed installs what the testbed needs and runs `run.sh flashcrowd
// ARGS --out DIR`; it returns the run lines by system and the summary line,
// and checks that the run left no namespace behind.
func runTestbed(t *testing.T, args ...string) (outDir string, runs map[string]map[string]any, summary map[string]any) {
	t.Helper()
	outDir, lines := runScenario(t, "flashcrowd", args...)
	runs = map[string]map[string]any{}
	for _, l := range lines {
		switch l["type"] {
		case "run":
			runs[l["system"].(string)] = l
		case "summary":
			summary = l
		}
	}
	return outDir, runs, summary
}

// runScenario installs what the testbed needs and runs `run.sh SCENARIO
// ARGS --out DIR`; it returns every stdout line, checks the testbed line's
// RTT, and that the run left no namespace behind.
func runScenario(t *testing.T, scenario string, args ...string) (outDir string, lines []map[string]any) {
	t.Helper()
	start := time.Now()
	inst := exec.Command("bash", "install.sh")
	if out, err := inst.CombinedOutput(); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}

	installed := time.Now()
	outDir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append(append([]string{"run.sh", scenario}, args...), "--out", outDir)...)
	// On timeout run.sh gets SIGTERM, so that its trap cleans up.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	t.Logf("install.sh took %s, run.sh %s; stderr:\n%s", installed.Sub(start).Round(time.Second),
		time.Since(installed).Round(time.Second), tail(stderr.String(), 4000))
	if err != nil {
		t.Fatalf("run.sh: %v\nstdout:\n%s", err, stdout.String())
	}

	runID := ""
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("stdout line is not JSON: %q", sc.Text())
		}
		lines = append(lines, l)
		switch l["type"] {
		case "testbed":
			runID, _ = l["run_id"].(string)
			rtt := l["rtt_ms"].(map[string]any)["peer_edge"].(map[string]any)["median_ms"].(float64)
			if rtt < 15 || rtt > 60 {
				t.Errorf("measured RTT %.1f ms for a configured 20 ms", rtt)
			}
			t.Logf("testbed: rtt %.1f ms, shaping %v", rtt, l["shaping"])
		}
	}
	if runID == "" {
		t.Fatal("no testbed line with a run_id")
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "esb-"+runID+"-") {
		t.Errorf("namespaces of run %s left behind:\n%s", runID, out)
	}
	return outDir, lines
}

// TestStreamSmoke runs the stream scenario on 3 viewers of a short stream,
// edgeswarm and CDN-only: every viewer plays to the end of what it was to
// play, the later edgeswarm viewers take bytes from the earlier ones, and
// the lines carry the scenario's fields.
func TestStreamSmoke(t *testing.T) {
	skipUnlessTestbed(t)
	_, lines := runScenario(t, "stream", "--peers", "3", "--size", "8MiB", "--play-seconds", "4", "--join-every", "1",
		"--runs", "1", "--verify-seconds", "2")
	runs := map[string]map[string]any{}
	var summary map[string]any
	for _, l := range lines {
		switch l["type"] {
		case "stream_run":
			runs[l["system"].(string)] = l
		case "stream_summary":
			summary = l
		}
	}
	for _, sys := range []string{"edgeswarm", "cdn"} {
		l, ok := runs[sys]
		if !ok {
			t.Fatalf("no stream_run line for %s", sys)
		}
		for _, f := range []string{"viewers", "bitrate_mbit", "ttfb_s", "startup_s", "rebuffer_ratio", "stalls", "edge_bytes", "peer_bytes", "offload"} {
			if _, ok := l[f]; !ok {
				t.Errorf("%s: field %s missing", sys, f)
			}
		}
		if l["ok"] != true || l["completed"].(float64) != 3 {
			t.Errorf("%s: ok %v, completed %v", sys, l["ok"], l["completed"])
		}
		t.Logf("%s: ttfb %v, start-up %v, rebuffer %v, offload %v", sys, l["ttfb_s"], l["startup_s"], l["rebuffer_ratio"], l["offload"])
	}
	if es := runs["edgeswarm"]; es != nil && es["peer_bytes"].(float64) == 0 {
		t.Errorf("edgeswarm: no viewer took bytes from another")
	}
	if summary == nil || summary["ttfb_ratio_to_cdn"] == nil {
		t.Errorf("summary %v", summary)
	}
}

// TestFlashcrowdSmoke runs the testbed end to end on a tiny flash crowd (4
// peers, 8 MiB, edgeswarm and CDN-only) where network namespaces can be made:
// as root, with `ip netns add` working. Elsewhere it is skipped.
// ESB_SKIP_TESTBED=1 or -short skips it too.
func TestFlashcrowdSmoke(t *testing.T) {
	skipUnlessTestbed(t)
	outDir, lines, _ := runTestbed(t, "--peers", "4", "--size", "8MiB", "--runs", "1", "--systems", "edgeswarm,cdn",
		"--rtt", "20", "--verify-seconds", "2")
	for _, sys := range []string{"edgeswarm", "cdn"} {
		l, ok := lines[sys]
		if !ok {
			t.Errorf("no run line for %s", sys)
			continue
		}
		for _, f := range []string{"system", "peers", "file_bytes", "edge_up_mbit", "peer_up_mbit", "peer_down_mbit", "rtt_ms",
			"completion_s", "fluid_bound_s", "ratio_to_bound", "edge_bytes", "peer_bytes", "offload", "offload_limit",
			"cross_isp_bytes", "cpu_s"} {
			if _, ok := l[f]; !ok {
				t.Errorf("%s: field %s missing", sys, f)
			}
		}
		c := l["completion_s"].(map[string]any)
		if l["sha256_ok"] != true || l["ok"] != true || l["completed"].(float64) != 4 {
			t.Errorf("%s: sha256_ok %v ok %v completed %v errors %v", sys, l["sha256_ok"], l["ok"], l["completed"], l["errors"])
		}
		if c["min"].(float64) <= 0 || c["max"].(float64) < c["min"].(float64) {
			t.Errorf("%s: completion %v", sys, c)
		}
		if got := l["edge_bytes"].(float64) + l["peer_bytes"].(float64); got < 4*8<<20 {
			t.Errorf("%s: %v bytes delivered, want >= %d", sys, got, 4*8<<20)
		}
		if l["cpu_s"].(float64) <= 0 {
			t.Errorf("%s: cpu_s %v", sys, l["cpu_s"])
		}
		t.Logf("%s: completion %v s, bound %v s, offload %v (limit %v), cross-ISP %v bytes", sys, c, l["fluid_bound_s"],
			l["offload"], l["offload_limit"], l["cross_isp_bytes"])
	}
	if cdn, ok := lines["cdn"]; ok && cdn["peer_bytes"].(float64) != 0 {
		t.Errorf("cdn: peer_bytes %v", cdn["peer_bytes"])
	}
	for _, svg := range []string{"completion_cdf.svg", "bytes_by_source.svg"} {
		if err := wellFormed(filepath.Join(outDir, svg)); err != nil {
			t.Errorf("%s: %v", svg, err)
		}
	}
}

func wellFormed(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// TestFlashcrowdScenariosSmoke runs the scenarios composed on a tiny crowd
// (4 peers, 8 MiB; ~30 s): two network locations with cross-location
// hand-outs denied, a managed cache in each, and one peer killed mid-crowd.
// Same skips as TestFlashcrowdSmoke.
func TestFlashcrowdScenariosSmoke(t *testing.T) {
	skipUnlessTestbed(t)
	_, lines, summary := runTestbed(t, "--peers", "4", "--size", "8MiB", "--runs", "1", "--systems", "edgeswarm,cdn",
		"--rtt", "20", "--verify-seconds", "2", "--pids", "2", "--cross-pid", "deny", "--managed", "2", "--churn", "0.25")
	num := func(l map[string]any, f string) float64 {
		v, ok := l[f].(float64)
		if !ok {
			t.Errorf("%s: field %s missing or not a number: %v", l["system"], f, l[f])
		}
		return v
	}
	for _, sys := range []string{"edgeswarm", "cdn"} {
		l, ok := lines[sys]
		if !ok {
			t.Errorf("no run line for %s", sys)
			continue
		}
		if l["ok"] != true || num(l, "killed") != 1 || num(l, "survivors") != 3 || num(l, "completed") != 3 {
			t.Errorf("%s: ok %v killed %v survivors %v completed %v errors %v", sys, l["ok"], l["killed"], l["survivors"], l["completed"], l["errors"])
		}
		if num(l, "pids") != 2 || l["cross_pid"] != "deny" || num(l, "managed") != 2 || num(l, "churn") != 0.25 {
			t.Errorf("%s: scenario fields %v %v %v %v", sys, l["pids"], l["cross_pid"], l["managed"], l["churn"])
		}
		// deny: nothing but control traffic crosses between the ISPs
		if c := num(l, "cross_isp_bytes"); c > 64<<10 {
			t.Errorf("%s: %v bytes crossed between the ISPs with --cross-pid deny", sys, c)
		}
		t.Logf("%s: completion %v, cross-ISP %v B, same-ISP %v B, from caches %v B, pre-positioning %v s, edge usage %v", sys,
			l["completion_s"], l["cross_isp_bytes"], l["same_isp_bytes"], l["bytes_from_managed"], l["preposition_s"], l["edge_usage"])
	}
	if es := lines["edgeswarm"]; es != nil {
		u, _ := es["edge_usage"].(map[string]any)
		if u == nil || u["cross_pid_bytes"] != 0.0 || u["cache_bytes"].(float64) <= 0 {
			t.Errorf("edgeswarm: edge_usage %v: want cache bytes and none across locations", es["edge_usage"])
		}
		if num(es, "bytes_from_managed") <= 0 || num(es, "preposition_s") <= 0 {
			t.Errorf("edgeswarm: bytes_from_managed %v preposition_s %v", es["bytes_from_managed"], es["preposition_s"])
		}
	}
	if cdn := lines["cdn"]; cdn != nil {
		if _, ok := cdn["preposition_s"]; ok || cdn["bytes_from_managed"] != 0.0 {
			t.Errorf("cdn: has no caches, yet preposition_s %v bytes_from_managed %v", cdn["preposition_s"], cdn["bytes_from_managed"])
		}
	}
	if sc, _ := summary["scenario"].(map[string]any); sc == nil || sc["managed"] != 2.0 {
		t.Errorf("summary scenario %v", summary["scenario"])
	}
}
