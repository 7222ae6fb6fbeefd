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
