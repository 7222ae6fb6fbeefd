package netmap

import (
	"net/netip"
	"strings"
	"testing"
)

const yamlMap = `
pids:
  isp-a: [10.1.0.0/16, "2001:db8:a::/48"]
  isp-a-pop1: [10.1.7.0/24]
  isp-b: [10.2.0.0/16, 192.0.2.7/32]
costs:
  isp-a: {isp-b: 10, isp-a-pop1: 1}
  isp-b: {isp-a: 12}
default_cost: 50
`

func TestLookupAndCost(t *testing.T) {
	m, err := Parse([]byte(yamlMap))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"10.1.2.3":        "isp-a",
		"10.1.7.9":        "isp-a-pop1", // the longer prefix wins
		"10.2.255.255":    "isp-b",
		"192.0.2.7":       "isp-b",
		"192.0.2.8":       DefaultPID,
		"::ffff:10.1.2.3": "isp-a", // IPv4-mapped
		"2001:db8:a:1::5": "isp-a",
		"2001:db8:b::1":   DefaultPID,
		"fe80::1%eth0":    DefaultPID,
		"0.0.0.0":         DefaultPID,
		"255.255.255.255": DefaultPID,
	} {
		if got := m.Lookup(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Lookup(%s) = %q, want %q", addr, got, want)
		}
	}
	for hp, want := range map[string]string{"10.2.0.1:7001": "isp-b", "[2001:db8:a::1]:80": "isp-a", "10.1.0.1": "isp-a", "peer.example:80": DefaultPID, "": DefaultPID} {
		if got := m.LookupHostPort(hp); got != want {
			t.Errorf("LookupHostPort(%q) = %q, want %q", hp, got, want)
		}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{{"isp-a", "isp-b", 10}, {"isp-b", "isp-a", 12}, {"isp-a", "isp-a", 0}, {"isp-a", "isp-a-pop1", 1}, {"isp-a-pop1", "isp-b", 50}, {DefaultPID, "isp-a", 50}} {
		if got := m.Cost(c.a, c.b); got != c.want {
			t.Errorf("Cost(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if got := m.PIDs(); strings.Join(got, ",") != "isp-a,isp-a-pop1,isp-b" || m.Prefixes() != 5 {
		t.Errorf("PIDs %v, %d prefixes", got, m.Prefixes())
	}
	var zero *Map
	if zero.Lookup(netip.MustParseAddr("10.1.2.3")) != DefaultPID || zero.Cost("a", "b") != 0 {
		t.Error("nil map: want everything in the default PID at cost 0")
	}
}

// An ALTO server's network map and cost map, merged, read as they come.
func TestALTO(t *testing.T) {
	m, err := Parse([]byte(`{
	  "meta": {"vtag": {"resource-id": "my-default-network-map", "tag": "da65eca2eb7a10ce8b059740b0b2e3f8eb1d4785"}},
	  "network-map": {
	    "PID1": {"ipv4": ["192.0.2.0/24", "198.51.100.0/25"]},
	    "PID2": {"ipv4": ["198.51.100.128/25"]},
	    "PID3": {"ipv4": ["0.0.0.0/0"], "ipv6": ["::/0"]}
	  },
	  "cost-map": {
	    "PID1": {"PID1": 1, "PID2": 5, "PID3": 10},
	    "PID2": {"PID1": 5, "PID2": 1, "PID3": 15},
	    "PID3": {"PID1": 20, "PID2": 15}
	  }
	}`))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{"192.0.2.1": "PID1", "198.51.100.200": "PID2", "8.8.8.8": "PID3", "2001:db8::1": "PID3"} {
		if got := m.Lookup(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Lookup(%s) = %q, want %q", addr, got, want)
		}
	}
	if m.Cost("PID1", "PID1") != 1 || m.Cost("PID3", "PID2") != 15 || m.Cost("PID3", "PID3") != 0 {
		t.Errorf("costs: %d %d %d", m.Cost("PID1", "PID1"), m.Cost("PID3", "PID2"), m.Cost("PID3", "PID3"))
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"pids:\n  a: [10.0.0.0/8]\n  b: [10.0.0.0/8]\n", "in PID \"a\" and PID \"b\""},
		{"pids:\n  a: [10.0.0.0/8]\n  b: [10.0.0.1/8]\n", "in PID \"a\" and PID \"b\""}, // the same prefix, unmasked
		{"pids:\n  a: [10.0.0.0/33]\n", "PID \"a\""},
		{"pids:\n  a: [not-a-prefix]\n", "PID \"a\""},
		{"pids:\n  \"a b\": [10.0.0.0/8]\n", "not allowed"},
		{"pids:\n  a: [10.0.0.0/8]\ncosts:\n  a: {c: 1}\n", "PID \"c\""},
		{"pids:\n  a: [10.0.0.0/8]\ncosts:\n  a: {a: -1}\n", "negative"},
		{"pids:\n  a: [10.0.0.0/8]\ndefault_cost: -3\n", "negative"},
		{"pids:\n  a: [10.0.0.0/8]\nbogus: 1\n", "bogus"},
		{`{"cost-map": {}}`, "without \"network-map\""},
		{`{"network-map": {"a": {"ipv5": ["10.0.0.0/8"]}}}`, "ipv5"},
		{`{"network-map": {"a": {"ipv4": ["10.0.0.0/8"]}}, "cost-map": {"a": {"a": -2}}}`, "want 0"},
		{`{"network-map": `, "ALTO JSON"},
	} {
		if _, err := Parse([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want one naming %q", tc.in, err, tc.want)
		}
	}
	if _, err := Parse(make([]byte, MaxFileBytes+1)); err == nil {
		t.Error("oversized file accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(yamlMap))
	f.Add([]byte(`{"network-map": {"P": {"ipv4": ["10.0.0.0/8"], "ipv6": ["2001:db8::/32"]}}, "cost-map": {"P": {"P": 3}}}`))
	f.Add([]byte("pids: {a: ['::/0', 0.0.0.0/0]}\n"))
	addrs := []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:1.2.3.4"), {}}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		for _, a := range addrs {
			pid := m.Lookup(a)
			_ = m.Cost(pid, DefaultPID)
		}
	})
}
