package main

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlotsAreWellFormedSVG(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "results.jsonl")
	lines := `{"type":"testbed","rtt_ms":{"peer_edge":{"median_ms":20.6}}}
{"type":"run","system":"edgeswarm","run":1,"peers":3,"file_bytes":8388608,"edge_up_mbit":100,"peer_up_mbit":20,"peer_down_mbit":100,"rtt_set_ms":20,"fluid_bound_s":1.2,"edge_bytes":9000000,"peer_bytes":16165824,"offload":0.64,"offload_limit":0.4,"per_peer_s":[1.5,1.7,2.1]}
{"type":"run","system":"cdn <&>","run":1,"peers":3,"file_bytes":8388608,"fluid_bound_s":1.2,"edge_bytes":25165824,"peer_bytes":0,"per_peer_s":[2.2,2.4,2.5]}
{"type":"median","system":"edgeswarm","peers":3,"file_bytes":8388608,"edge_bytes":9000000,"peer_bytes":6165824,"bytes_from_managed":10000000,"offload":0.64,"offload_limit":0.4}
{"type":"median","system":"cdn <&>","peers":3,"file_bytes":8388608,"edge_bytes":25165824,"peer_bytes":0}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"completion_cdf.svg", "bytes_by_source.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(strings.NewReader(string(b)))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if !strings.Contains(string(b), "cdn &lt;&amp;&gt;") || !strings.Contains(string(b), "edgeswarm") {
			t.Errorf("%s: system names missing or not escaped", name)
		}
		if name == "bytes_by_source.svg" && !strings.Contains(string(b), "from managed caches") {
			t.Errorf("%s: managed-cache bytes have no legend", name)
		}
	}
}
