package demo

import "testing"

func TestConfigValidation(t *testing.T) {
	for name, c := range map[string]Config{
		"too many bad peers": {Peers: 3, BadPeers: 3},
		"chunk not power":    {ChunkSize: 100000},
		"too many peers":     {Peers: 100000},
		"negative rate":      {EdgeUp: -1},
	} {
		if err := c.applyDefaults().validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (Config{}).applyDefaults().validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}

func TestDemoNetworkMap(t *testing.T) {
	m, err := demoNetworkMap(3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := m.LookupHostPort(pidAddr(i) + ":7000"); got != "pid-"+string(rune('0'+i)) {
			t.Errorf("location %d's address is in %q", i, got)
		}
	}
	if m.LookupHostPort("127.0.0.1:8080") != "default" {
		t.Error("the edges' address is in a peer location")
	}
	if m, _ := demoNetworkMap(1); m != nil {
		t.Error("one location made a map")
	}
	for name, c := range map[string]Config{"bad cross-pid": {CrossPID: "sometimes"}, "too many pids": {PIDs: 500}} {
		if err := c.applyDefaults().validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
