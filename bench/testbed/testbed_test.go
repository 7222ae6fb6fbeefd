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

// TestFlashcrowdSmoke runs the testbed end to end on a tiny flash crowd (4
// peers, 8 MiB, edgeswarm and CDN-only) where network namespaces can be made:
// as root, with `ip netns add` working. Elsewhere it is skipped.
// ESB_SKIP_TESTBED=1 or -short skips it too.
func TestFlashcrowdSmoke(t *testing.T) {
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

	start := time.Now()
	inst := exec.Command("bash", "install.sh")
	if out, err := inst.CombinedOutput(); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}

	installed := time.Now()
	outDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "run.sh", "flashcrowd", "--peers", "4", "--size", "8MiB",
		"--runs", "1", "--systems", "edgeswarm,cdn", "--rtt", "20", "--verify-seconds", "2", "--out", outDir)
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

	lines := map[string]map[string]any{}
	runID := ""
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("stdout line is not JSON: %q", sc.Text())
		}
		switch l["type"] {
		case "testbed":
			runID, _ = l["run_id"].(string)
			rtt := l["rtt_ms"].(map[string]any)["peer_edge"].(map[string]any)["median_ms"].(float64)
			if rtt < 15 || rtt > 60 {
				t.Errorf("measured RTT %.1f ms for a configured 20 ms", rtt)
			}
			t.Logf("testbed: rtt %.1f ms, shaping %v", rtt, l["shaping"])
		case "run":
			lines[l["system"].(string)] = l
		}
	}
	if runID == "" {
		t.Fatal("no testbed line with a run_id")
	}
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

	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "esb-"+runID+"-") {
		t.Errorf("namespaces of run %s left behind:\n%s", runID, out)
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
