// Package netmap maps addresses to network locations and locations to
// costs, in the spirit of ALTO (RFC 7285): a network map groups CIDR
// prefixes into PIDs (an ISP, a site, a region), and a cost map gives the
// cost of traffic from one PID to another. Edges rank peer hand-outs by
// it; the router picks edges by it.
//
// A map is read from a file in one of two forms. The project's own YAML:
//
//	pids:
//	  isp-a: [10.1.0.0/16, 2001:db8:a::/48]
//	  isp-b: [10.2.0.0/16]
//	costs:                 # from → to → cost; missing pairs cost default_cost
//	  isp-a: {isp-b: 10}
//	  isp-b: {isp-a: 10}
//	default_cost: 100      # optional; 0 means 100
//
// or the JSON of an ALTO server's network map and cost map responses,
// merged into one object: {"network-map": {"PID": {"ipv4": [...],
// "ipv6": [...]}}, "cost-map": {"PID": {"PID": cost}}} (other members, such
// as "meta", are ignored). The cost from a PID to itself is 0 unless given.
// An address in no prefix belongs to the PID "default", as ALTO's
// default PID does.
package netmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Bounds on what a map file may hold.
const (
	MaxFileBytes = 16 << 20
	MaxPIDs      = 10_000
	MaxPrefixes  = 1_000_000
	MaxPIDLen    = 64
)

// DefaultPID is the location of an address no prefix covers.
const DefaultPID = "default"

// Map is a network map and its cost map. The zero value maps every
// address to DefaultPID at cost 0. A Map is immutable once built and safe
// for concurrent use.
type Map struct {
	// byLen holds the prefixes of each length (IPv4 addresses as
	// IPv4-mapped IPv6, lengths +96), longest first.
	lens  []int
	byLen map[int]map[netip.Prefix]string
	pids  []string                  // sorted
	costs map[string]map[string]int // from → to
	def   int
	n     int // prefixes
}

// PIDs returns the map's PIDs, sorted (DefaultPID only if named).
func (m *Map) PIDs() []string {
	if m == nil {
		return nil
	}
	return slices.Clone(m.pids)
}

// Prefixes is how many prefixes the map holds.
func (m *Map) Prefixes() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Lookup returns the PID of addr: the PID of the longest prefix holding
// it, else DefaultPID.
func (m *Map) Lookup(addr netip.Addr) string {
	if m == nil || !addr.IsValid() {
		return DefaultPID
	}
	a := addr.Unmap()
	if a.Is4() {
		a = netip.AddrFrom16(a.As16())
	}
	a = a.WithZone("")
	for _, l := range m.lens {
		p, err := a.Prefix(l)
		if err != nil {
			continue
		}
		if pid, ok := m.byLen[l][p]; ok {
			return pid
		}
	}
	return DefaultPID
}

// LookupHostPort is Lookup for "host:port" or a bare host; a name that is
// not an address maps to DefaultPID.
func (m *Map) LookupHostPort(hostport string) string {
	host := hostport
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return m.Lookup(ap.Addr())
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		return m.Lookup(a)
	}
	return DefaultPID
}

// Cost is the cost of traffic from PID a to PID b: the cost map's entry,
// else 0 when a == b, else the default cost.
func (m *Map) Cost(a, b string) int {
	if m == nil {
		return 0
	}
	if c, ok := m.costs[a][b]; ok {
		return c
	}
	if a == b {
		return 0
	}
	return m.def
}

// fileYAML is the project's own form.
type fileYAML struct {
	PIDs        map[string][]string       `yaml:"pids"`
	Costs       map[string]map[string]int `yaml:"costs"`
	DefaultCost int                       `yaml:"default_cost"`
}

// fileALTO is ALTO's JSON: a network map and a cost map response merged.
type fileALTO struct {
	NetworkMap map[string]map[string][]string `json:"network-map"`
	CostMap    map[string]map[string]float64  `json:"cost-map"`
}

// Parse reads a map file in either form (JSON when it starts with "{").
func Parse(data []byte) (*Map, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("netmap: file larger than %d bytes", MaxFileBytes)
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return parseALTO(t)
	}
	var f fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("netmap: %w", err)
	}
	if f.DefaultCost < 0 {
		return nil, fmt.Errorf("netmap: default_cost %d is negative", f.DefaultCost)
	}
	return build(f.PIDs, f.Costs, f.DefaultCost)
}

func parseALTO(data []byte) (*Map, error) {
	var f fileALTO
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("netmap: ALTO JSON: %w", err)
	}
	if f.NetworkMap == nil {
		return nil, errors.New(`netmap: ALTO JSON without "network-map"`)
	}
	pids := make(map[string][]string, len(f.NetworkMap))
	for pid, families := range f.NetworkMap {
		for fam, prefixes := range families {
			if fam != "ipv4" && fam != "ipv6" {
				return nil, fmt.Errorf("netmap: PID %q: address type %q (want ipv4 or ipv6)", pid, fam)
			}
			pids[pid] = append(pids[pid], prefixes...)
		}
		if _, ok := pids[pid]; !ok {
			pids[pid] = nil
		}
	}
	costs := make(map[string]map[string]int, len(f.CostMap))
	for from, row := range f.CostMap {
		costs[from] = make(map[string]int, len(row))
		for to, c := range row {
			if math.IsNaN(c) || c < 0 || c > math.MaxInt32 {
				return nil, fmt.Errorf("netmap: cost %v from %q to %q: want 0 to %d", c, from, to, math.MaxInt32)
			}
			costs[from][to] = int(math.Round(c))
		}
	}
	return build(pids, costs, 0)
}

// build checks and indexes a map.
func build(pids map[string][]string, costs map[string]map[string]int, def int) (*Map, error) {
	if len(pids) > MaxPIDs {
		return nil, fmt.Errorf("netmap: %d PIDs, more than %d", len(pids), MaxPIDs)
	}
	if def == 0 {
		def = 100
	}
	m := &Map{byLen: map[int]map[netip.Prefix]string{}, costs: map[string]map[string]int{}, def: def}
	owner := map[netip.Prefix]string{}
	for _, pid := range slices.Sorted(maps.Keys(pids)) {
		if err := checkPID(pid); err != nil {
			return nil, err
		}
		m.pids = append(m.pids, pid)
		for _, s := range pids[pid] {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("netmap: PID %q: %w", pid, err)
			}
			p = canonical(p)
			if other, dup := owner[p]; dup {
				return nil, fmt.Errorf("netmap: prefix %s is in PID %q and PID %q", s, other, pid)
			}
			if m.n++; m.n > MaxPrefixes {
				return nil, fmt.Errorf("netmap: more than %d prefixes", MaxPrefixes)
			}
			owner[p] = pid
			if m.byLen[p.Bits()] == nil {
				m.byLen[p.Bits()] = map[netip.Prefix]string{}
			}
			m.byLen[p.Bits()][p] = pid
		}
	}
	for l := range m.byLen {
		m.lens = append(m.lens, l)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(m.lens)))
	for from, row := range costs {
		if _, ok := pids[from]; !ok && from != DefaultPID {
			return nil, fmt.Errorf("netmap: cost map names PID %q, which the network map does not", from)
		}
		m.costs[from] = map[string]int{}
		for to, c := range row {
			if _, ok := pids[to]; !ok && to != DefaultPID {
				return nil, fmt.Errorf("netmap: cost map names PID %q, which the network map does not", to)
			}
			if c < 0 {
				return nil, fmt.Errorf("netmap: cost %d from %q to %q is negative", c, from, to)
			}
			m.costs[from][to] = c
		}
	}
	return m, nil
}

// canonical is p masked, with an IPv4 prefix as its IPv4-mapped IPv6 form.
func canonical(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4() {
		return netip.PrefixFrom(netip.AddrFrom16(a.As16()), p.Bits()+96)
	}
	return p
}

// checkPID: ALTO's PID names are up to 64 characters of letters, digits,
// '-', '.', ':', '@' and '_'.
func checkPID(pid string) error {
	if pid == "" || len(pid) > MaxPIDLen {
		return fmt.Errorf("netmap: PID %q: want 1 to %d characters", pid, MaxPIDLen)
	}
	for _, c := range pid {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("-.:@_", c):
		default:
			return fmt.Errorf("netmap: PID %q: character %q not allowed (letters, digits, - . : @ _)", pid, c)
		}
	}
	return nil
}
