package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/keyfile"
)

// binary builds edgeswarm once for the tests of this file.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgeswarm")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs the binary in the background until the test ends and returns
// a function that waits for a line of its stderr to match re.
func start(t *testing.T, bin string, args ...string) func(re string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return func(re string) string {
		rx := regexp.MustCompile(re)
		deadline := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s exited before logging %q", args[0], re)
				}
				if m := rx.FindStringSubmatch(l); m != nil {
					return m[len(m)-1]
				}
			case <-deadline:
				t.Fatalf("%s did not log %q", args[0], re)
			}
		}
	}
}

func TestHelpForEverySubcommand(t *testing.T) {
	bin := binary(t)
	for _, sub := range []string{"origin", "edge", "peer", "get", "demo"} {
		out, err := exec.Command(bin, sub, "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage:") {
			t.Errorf("%s --help: %v\n%s", sub, err, out)
		}
	}
	if out, err := exec.Command(bin, "demo", "--size", "lots").CombinedOutput(); err == nil || !strings.Contains(string(out), "--size") {
		t.Errorf("bad flag accepted or unclear: %v %s", err, out)
	}
}

// TestBinaryEndToEnd runs the real binary as separate processes: an origin,
// an edge, a long-running peer whose player endpoint streams a range, and
// `get --json` through the swarm, then checks the bytes.
func TestBinaryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	dir := t.TempDir()
	obj := make([]byte, 3<<20+123)
	for i := range obj {
		obj[i] = byte(i*31 + i>>11)
	}
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	originAddr, edgeAddr, peerAddr, playerAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	start(t, bin, "origin", "--dir", dir, "--listen", originAddr)("origin serving")
	key := start(t, bin, "edge", "--origin", "http://"+originAddr, "--listen", edgeAddr,
		"--cache-dir", filepath.Join(t.TempDir(), "cache"), "--cache-size", "64MiB")(`public_key=([0-9a-f]{64})`)
	edgeURL := "http://" + edgeAddr

	// A plain HTTP client through the edge.
	resp, err := http.Get(edgeURL + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, obj) {
		t.Fatalf("edge body: %d bytes, status %s", len(body), resp.Status)
	}

	// A peer agent; its player endpoint serves a Range while downloading.
	// Its identity key is created in its data dir, readable only by it, and
	// names it.
	peerDir := filepath.Join(t.TempDir(), "peer")
	peerID := start(t, bin, "peer", "--edge", edgeURL, "--listen", peerAddr, "--player-listen", playerAddr,
		"--data-dir", peerDir, "--trust-key", key)(`peer serving.* peer_id=([0-9a-f]{32})`)
	if st, err := os.Stat(filepath.Join(peerDir, "peer.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("peer key file: %v, mode %v; want 0600", err, st.Mode())
	}
	if idKey, err := keyfile.LoadOrCreate(filepath.Join(peerDir, "peer.key")); err != nil || core.PeerIDOf(idKey.Public().(ed25519.PublicKey)) != peerID {
		t.Fatalf("peer_id %s is not that of the key file (%v)", peerID, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+playerAddr+"/content/big.bin", nil)
	req.Header.Set("Range", "bytes=1000000-1999999")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, obj[1000000:2000000]) {
		t.Fatalf("player range: %s, %d bytes", resp.Status, len(body))
	}

	// get through the swarm: the peer above now seeds.
	out := filepath.Join(t.TempDir(), "got.bin")
	cmd := exec.Command(bin, "get", edgeURL+"/big.bin", "-o", out, "--json", "--trust-key", key)
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("get: %v\n%s", err, stdout)
	}
	var res getResult
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("get --json printed %q: %v", stdout, err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(obj) || res.Bytes != int64(len(obj)) || res.SHA256 != fmt.Sprintf("%x", sha256.Sum256(obj)) {
		t.Fatalf("get wrote %d bytes, result %+v", len(got), res)
	}
	if res.BytesFromEdge+res.BytesFromPeers < int64(len(obj)) {
		t.Fatalf("bytes by source %+v do not cover the object", res)
	}
	t.Logf("get: %+v", res)
}
