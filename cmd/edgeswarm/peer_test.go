package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/peer"
)

func defaultPeerFlags() peerFlags {
	return peerFlags{upLimit: "0", downLimit: "0", diskBudget: "0", upload: "on", idleAfter: 30 * time.Second,
		idleCPU: 50, maxUploads: 16, maxConns: 256, maxPeers: 50, statusEvery: time.Minute}
}

// TestPeerConfig checks that the caps and consent flags reach the agent's
// config, and that each bad value is refused naming its flag.
func TestPeerConfig(t *testing.T) {
	pf := defaultPeerFlags()
	pf.upLimit, pf.downLimit, pf.diskBudget, pf.upload = "8Mbit", "100Mbit", "1GiB", "idle"
	pf.idleAfter, pf.idleCPU, pf.maxConns, pf.maxPeers, pf.maxUploads = 45*time.Second, 30, 64, 12, 4
	cfg, link, budget, err := peerConfig(pf)
	if err != nil {
		t.Fatal(err)
	}
	want := peer.Config{UploadLimitBps: 1_000_000, MaxUploads: 4, MaxConns: 64, MaxPeers: 12, Upload: peer.UploadIdle, IdleAfterMs: 45000, IdleCPUPercent: 30}
	if cfg.UploadLimitBps != want.UploadLimitBps || cfg.MaxUploads != want.MaxUploads || cfg.MaxConns != want.MaxConns ||
		cfg.MaxPeers != want.MaxPeers || cfg.Upload != want.Upload || cfg.IdleAfterMs != want.IdleAfterMs || cfg.IdleCPUPercent != want.IdleCPUPercent {
		t.Fatalf("config %+v, want %+v", cfg, want)
	}
	if budget != 1<<30 {
		t.Fatalf("budget %d", budget)
	}
	if link.Up != nil || link.Down.BytesPerSec() != 100e6/8 {
		t.Fatal("the link must shape downloads only: the agent caps uploads itself")
	}
	for flag, set := range map[string]func(*peerFlags){
		"--upload-limit":   func(p *peerFlags) { p.upLimit = "fast" },
		"--download-limit": func(p *peerFlags) { p.downLimit = "-1" },
		"--disk-budget":    func(p *peerFlags) { p.diskBudget = "lots" },
		"--upload":         func(p *peerFlags) { p.upload = "sometimes" },
		"--max-uploads":    func(p *peerFlags) { p.maxUploads = 0 },
		"--max-conns":      func(p *peerFlags) { p.maxConns = -3 },
		"--max-peers":      func(p *peerFlags) { p.maxPeers = 100000 },
		"--idle-after":     func(p *peerFlags) { p.idleAfter = 0 },
		"--idle-cpu":       func(p *peerFlags) { p.idleCPU = 150 },
		"--status-every":   func(p *peerFlags) { p.statusEvery = -time.Second },
	} {
		pf := defaultPeerFlags()
		set(&pf)
		if _, _, _, err := peerConfig(pf); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("bad %s: error %v does not name it", flag, err)
		}
	}
}

// TestPeerStatusFromBinary runs `edgeswarm peer` with caps and consent
// flags and reads them back from GET /status and the periodic status log.
func TestPeerStatusFromBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	player := freeAddr(t)
	wait := start(t, bin, "peer", "--edge", "http://127.0.0.1:1", "--listen", freeAddr(t), "--player-listen", player,
		"--data-dir", filepath.Join(t.TempDir(), "peer"), "--upload", "off", "--upload-limit", "8Mbit",
		"--disk-budget", "64MiB", "--max-conns", "4", "--max-uploads", "2", "--max-peers", "9", "--status-every", "100ms")
	wait("peer serving")
	resp, err := http.Get("http://" + player + peer.PathStatus)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st peer.AgentStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.UploadMode != peer.UploadOff || st.Offering || st.UploadLimitBps != 1_000_000 || st.MaxConns != 4 ||
		st.MaxUploads != 2 || st.MaxPeers != 9 || st.Disk.BudgetBytes != 64<<20 {
		t.Fatalf("status %+v", st)
	}
	line := wait(`(peer status.*)`)
	for _, want := range []string{"upload_mode=off", "disk_budget=\"64.0 MiB\"", "upload_limit="} {
		if !strings.Contains(line, want) {
			t.Errorf("status log line %q lacks %s", line, want)
		}
	}
}
