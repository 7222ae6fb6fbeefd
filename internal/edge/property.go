package edge

// Properties: the tenants of a shared edge. Each answers for some
// hostnames, fetches from its own origin and may override the cache
// policy. A property's objects live in their own part of the cache key
// space, so two properties never share a stored body.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Property is one tenant of the edge.
type Property struct {
	// Name identifies the property in cache keys, logs and metrics:
	// letters, digits, '-', '_' and '.' (required when there are several).
	Name string `yaml:"name"`
	// Hosts are the request hostnames it answers: exact names
	// ("cdn.example.com"), one-level wildcards ("*.example.com") or "*"
	// (any host; at most one property). Ports are ignored.
	Hosts []string `yaml:"hosts"`
	// Origin is the base URL fetched from, e.g. "http://10.0.0.5:9000".
	Origin string `yaml:"origin"`
	// DefaultTTL overrides the edge's default freshness for responses
	// without explicit expiry or Last-Modified; 0 keeps the edge's.
	DefaultTTL time.Duration `yaml:"default_ttl"`
	// ForceTTL, if positive, is the freshness of every stored response,
	// whatever the origin says (no-store and private still apply).
	ForceTTL time.Duration `yaml:"force_ttl"`
	// StaleIfError overrides the edge's StaleIfError; 0 keeps it, -1ns
	// never serves stale on error.
	StaleIfError time.Duration `yaml:"stale_if_error"`
	// IgnoreQuery drops the query string from the cache key and from
	// origin requests (for origins that ignore it: tracking parameters).
	IgnoreQuery bool `yaml:"ignore_query"`
	// CrossPID says whether peers of its objects may be handed peers in
	// another network location (Config.NetworkMap): "allow" (the default:
	// the same location ranks first), "deny" (only the same location; a
	// peer finds the rest at the edge or a managed cache of its location)
	// or "managed-only" (peers of other locations only if they are managed
	// caches).
	CrossPID string `yaml:"cross_pid"`
}

// Property.CrossPID values.
const (
	CrossPIDAllow       = "allow"
	CrossPIDDeny        = "deny"
	CrossPIDManagedOnly = "managed-only"
)

// property is a validated Property.
type property struct {
	Property
	base   string // origin base URL without a trailing slash
	prefix string // cache key prefix: "" for the first property, else "/\x01name"
	def    time.Duration
	stale  stalePolicy
}

// lifetime is m's freshness lifetime under this property's policy.
func (p *property) lifetime(m meta) time.Duration {
	if p.ForceTTL > 0 && m.Header[softPurgeMark] == "" {
		return p.ForceTTL
	}
	return lifetime(m, p.def)
}

// keyPrefixMark starts the cache keys of every property but the first: a
// request path cannot hold a raw control byte (cacheKey takes the escaped
// path), so no request of one property can name another's key.
const keyPrefixMark = "/\x01"

func validPropertyName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// buildProperties validates the properties of cfg (the Origin shortcut
// being one property "default" answering any host).
func buildProperties(cfg Config) ([]*property, error) {
	props := cfg.Properties
	if cfg.Origin != "" {
		if len(props) > 0 {
			return nil, errors.New("edge config: give Origin or Properties, not both")
		}
		props = []Property{{Name: "default", Hosts: []string{"*"}, Origin: cfg.Origin, CrossPID: cfg.CrossPID}}
	}
	if len(props) == 0 {
		return nil, errors.New("edge config: Origin (or at least one property) is required")
	}
	var out []*property
	names, hosts := map[string]bool{}, map[string]string{}
	for i, p := range props {
		where := fmt.Sprintf("property %d", i+1)
		if p.Name != "" {
			where = fmt.Sprintf("property %q", p.Name)
		}
		switch {
		case len(props) > 1 && !validPropertyName(p.Name):
			return nil, fmt.Errorf("edge config: %s: name %q must be 1-64 letters, digits, '-', '_' or '.'", where, p.Name)
		case p.Name != "" && !validPropertyName(p.Name):
			return nil, fmt.Errorf("edge config: %s: name must be 1-64 letters, digits, '-', '_' or '.'", where)
		case names[p.Name]:
			return nil, fmt.Errorf("edge config: %s: name used twice", where)
		case len(p.Hosts) == 0:
			return nil, fmt.Errorf("edge config: %s: no hosts", where)
		case p.DefaultTTL < 0 || p.ForceTTL < 0 || p.StaleIfError < -1:
			return nil, fmt.Errorf("edge config: %s: negative duration", where)
		case p.CrossPID != "" && p.CrossPID != CrossPIDAllow && p.CrossPID != CrossPIDDeny && p.CrossPID != CrossPIDManagedOnly:
			return nil, fmt.Errorf("edge config: %s: cross_pid %q: want %q, %q or %q", where, p.CrossPID, CrossPIDAllow, CrossPIDDeny, CrossPIDManagedOnly)
		}
		names[p.Name] = true
		if err := checkOrigin(p.Origin); err != nil {
			return nil, fmt.Errorf("edge config: %s: %w", where, err)
		}
		for _, h := range p.Hosts {
			h = strings.ToLower(strings.TrimSpace(h))
			if !validHostPattern(h) {
				return nil, fmt.Errorf("edge config: %s: host %q is not a hostname, *.domain or *", where, h)
			}
			if other, dup := hosts[h]; dup {
				return nil, fmt.Errorf("edge config: %s: host %q is already %s's", where, h, other)
			}
			hosts[h] = where
		}
		pp := &property{Property: p, base: strings.TrimSuffix(p.Origin, "/"), def: cfg.DefaultTTL}
		pp.Hosts = slices.Clone(p.Hosts)
		for j := range pp.Hosts {
			pp.Hosts[j] = strings.ToLower(strings.TrimSpace(pp.Hosts[j]))
		}
		if i > 0 {
			pp.prefix = keyPrefixMark + p.Name
		}
		if p.DefaultTTL > 0 {
			pp.def = p.DefaultTTL
		}
		sie := cfg.StaleIfError
		if p.StaleIfError != 0 {
			sie = p.StaleIfError
		}
		pp.stale = stalePolicy{defaultIfError: sie, maxIfError: cfg.MaxStaleIfError, maxWhileRevalidate: cfg.MaxStaleWhileRevalidate}
		out = append(out, pp)
	}
	return out, nil
}

// checkOrigin accepts an http(s) base URL without query or fragment.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if o == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("origin %q is not an http(s) base URL such as http://10.0.0.5:9000", o)
	}
	return nil
}

func validHostPattern(h string) bool {
	if h == "*" {
		return true
	}
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 || strings.ContainsAny(h, "*/:@ ") {
		return false
	}
	for l := range strings.SplitSeq(h, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

// propertyFor picks the property answering host (a Host header, port
// allowed): an exact name first, then the longest matching wildcard, then
// "*". nil: none.
func (s *Server) propertyFor(host string) *property {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var best *property
	bestLen := -1
	for _, p := range s.props {
		for _, pat := range p.Hosts {
			switch {
			case pat == host:
				return p
			case pat == "*" && bestLen < 0:
				best, bestLen = p, 0
			case strings.HasPrefix(pat, "*.") && strings.HasSuffix(host, pat[1:]) && len(pat) > bestLen:
				best, bestLen = p, len(pat)
			}
		}
	}
	return best
}

// propertyOfKey returns the property a cache key belongs to and the key's
// path (and query) on that property's origin.
func (s *Server) propertyOfKey(key string) (*property, string) {
	if rest, ok := strings.CutPrefix(key, keyPrefixMark); ok {
		name, path, _ := strings.Cut(rest, "/")
		for _, p := range s.props {
			if p.Name == name {
				return p, "/" + path
			}
		}
	}
	return s.props[0], key
}
