package edge

// The edge's YAML configuration file (`edgeswarm edge --config FILE`).
// Every error names the line it is about.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

// MaxConfigFile bounds a configuration file.
const MaxConfigFile = 1 << 20

// File is the configuration file: where the edge listens, and its Config.
// Sizes are written like "10GiB", durations like "90s".
type File struct {
	Listen  string `yaml:"listen"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	KeyFile string `yaml:"key_file"`
	// AdminListen serves the purge API; AdminTokenFile holds its token.
	AdminListen    string `yaml:"admin_listen"`
	AdminTokenFile string `yaml:"admin_token_file"`
	// ManagedTokenFile holds the managed-cache token (Config.ManagedToken).
	ManagedTokenFile   string        `yaml:"managed_token_file"`
	OrdersPollInterval time.Duration `yaml:"orders_poll_interval"`

	CacheDir      string `yaml:"cache_dir"`
	CacheSize     Size   `yaml:"cache_size"`
	MaxObjectSize Size   `yaml:"max_object_size"`
	MaxObjects    int    `yaml:"max_objects"`
	ChunkSize     Size   `yaml:"chunk_size"`
	// HotCacheSize is Config.HotCacheSize; absent means 64MiB, 0 off.
	HotCacheSize *Size `yaml:"hot_cache_size"`
	NoFastLane   bool  `yaml:"no_fast_lane"`
	// NetworkMap is the path of a network map file (internal/netmap);
	// CrossPID the one-origin property's cross_pid.
	NetworkMap string `yaml:"network_map"`
	CrossPID   string `yaml:"cross_pid"`

	DefaultTTL              time.Duration `yaml:"default_ttl"`
	LockTimeout             time.Duration `yaml:"lock_timeout"`
	OriginIdleTimeout       time.Duration `yaml:"origin_idle_timeout"`
	FillTimeout             time.Duration `yaml:"fill_timeout"`
	StaleIfError            time.Duration `yaml:"stale_if_error"`
	MaxStaleIfError         time.Duration `yaml:"max_stale_if_error"`
	MaxStaleWhileRevalidate time.Duration `yaml:"max_stale_while_revalidate"`
	AnnounceInterval        time.Duration `yaml:"announce_interval"`
	MaxChunkUploads         int           `yaml:"max_chunk_uploads"`
	ClientSendTimeout       time.Duration `yaml:"client_send_timeout"`
	MaxRequestBody          Size          `yaml:"max_request_body"`
	TicketTTL               time.Duration `yaml:"ticket_ttl"`

	// Origin is the one-origin shortcut; Properties the tenants.
	Origin     string     `yaml:"origin"`
	Properties []Property `yaml:"properties"`

	Swarm swarm.Config `yaml:"swarm"`
}

// Size is a byte count written as an integer or with a unit ("512MiB").
type Size int64

// UnmarshalYAML reads a Size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a size such as 10GiB", n.Line)
	}
	v, err := units.ParseBytes(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: size %q: want a size such as 10GiB", n.Line, n.Value)
	}
	*s = Size(v)
	return nil
}

// Config returns the edge Config the file describes (the signing key is
// the caller's to load).
func (f *File) Config() Config {
	hot := int64(0) // the default
	if f.HotCacheSize != nil {
		if hot = int64(*f.HotCacheSize); hot == 0 {
			hot = -1 // off
		}
	}
	return Config{
		HotCacheSize: hot, DisableFastLane: f.NoFastLane, CrossPID: f.CrossPID,
		Origin: f.Origin, Properties: f.Properties,
		CacheDir: f.CacheDir, CacheSize: int64(f.CacheSize), MaxObjects: f.MaxObjects,
		MaxObjectSize: int64(f.MaxObjectSize), ChunkSize: int(f.ChunkSize),
		DefaultTTL: f.DefaultTTL, LockTimeout: f.LockTimeout, OriginIdleTimeout: f.OriginIdleTimeout,
		FillTimeout: f.FillTimeout, StaleIfError: f.StaleIfError, MaxStaleIfError: f.MaxStaleIfError,
		MaxStaleWhileRevalidate: f.MaxStaleWhileRevalidate, AnnounceInterval: f.AnnounceInterval,
		MaxChunkUploads: f.MaxChunkUploads, Swarm: f.Swarm, OrdersPollInterval: f.OrdersPollInterval,
		ClientSendTimeout: f.ClientSendTimeout, MaxRequestBody: int64(f.MaxRequestBody),
		TicketTTL: f.TicketTTL,
	}
}

// ParseConfigFile parses and checks a configuration file. Unknown keys,
// wrong types and invalid values are refused with the line they are on.
func ParseConfigFile(data []byte) (*File, error) {
	if len(data) > MaxConfigFile {
		return nil, fmt.Errorf("config: larger than %d bytes", MaxConfigFile)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, errors.New("config: empty file")
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: line %d: want a mapping of settings", doc.Line)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := checkFile(&f, doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &f, nil
}

// checkFile validates what the decoder cannot, pointing at the line.
func checkFile(f *File, doc *yaml.Node) error {
	line := func(n *yaml.Node, key string) int {
		if v := valueOf(n, key); v != nil {
			return v.Line
		}
		return n.Line
	}
	switch {
	case f.CacheDir == "":
		return fmt.Errorf("line %d: cache_dir is required", doc.Line)
	case f.Origin != "" && len(f.Properties) > 0:
		return fmt.Errorf("line %d: give origin or properties, not both", line(doc, "origin"))
	case f.CrossPID != "" && len(f.Properties) > 0:
		return fmt.Errorf("line %d: cross_pid here is the origin shortcut's; with properties, give it per property", line(doc, "cross_pid"))
	case f.Origin == "" && len(f.Properties) == 0:
		return fmt.Errorf("line %d: give origin (one origin for every host) or properties", doc.Line)
	case f.Origin != "":
		if err := checkOrigin(f.Origin); err != nil {
			return fmt.Errorf("line %d: origin: %w", line(doc, "origin"), err)
		}
	}
	for _, k := range []string{"default_ttl", "lock_timeout", "origin_idle_timeout", "fill_timeout", "max_stale_if_error", "max_stale_while_revalidate", "announce_interval", "client_send_timeout"} {
		if v := valueOf(doc, k); v != nil && strings.HasPrefix(strings.TrimSpace(v.Value), "-") {
			return fmt.Errorf("line %d: %s must not be negative", v.Line, k)
		}
	}
	if f.TicketTTL != 0 && (f.TicketTTL < time.Second || f.TicketTTL > core.MaxTicketLifetime) {
		return fmt.Errorf("line %d: ticket_ttl %v: want 1s to %v", line(doc, "ticket_ttl"), f.TicketTTL, core.MaxTicketLifetime)
	}
	if f.ChunkSize != 0 && !core.ValidChunkSize(int(f.ChunkSize)) {
		return fmt.Errorf("line %d: chunk_size %d is not a power of two between 16KiB and 64MiB", line(doc, "chunk_size"), f.ChunkSize)
	}
	props := valueOf(doc, "properties")
	names, hosts := map[string]int{}, map[string]int{}
	for i, p := range f.Properties {
		n := props.Content[i]
		if len(f.Properties) > 1 || p.Name != "" {
			if !validPropertyName(p.Name) {
				return fmt.Errorf("line %d: property name %q: 1-64 letters, digits, '-', '_' or '.' (required when there are several)", line(n, "name"), p.Name)
			}
			if prev, dup := names[p.Name]; dup {
				return fmt.Errorf("line %d: property name %q already used on line %d", line(n, "name"), p.Name, prev)
			}
			names[p.Name] = line(n, "name")
		}
		if err := checkOrigin(p.Origin); err != nil {
			return fmt.Errorf("line %d: origin: %w", line(n, "origin"), err)
		}
		if len(p.Hosts) == 0 {
			return fmt.Errorf("line %d: property without hosts", n.Line)
		}
		hn := valueOf(n, "hosts")
		for j, h := range p.Hosts {
			hl := hn.Line
			if j < len(hn.Content) {
				hl = hn.Content[j].Line
			}
			h = strings.ToLower(strings.TrimSpace(h))
			if !validHostPattern(h) {
				return fmt.Errorf("line %d: host %q is not a hostname, *.domain or *", hl, h)
			}
			if prev, dup := hosts[h]; dup {
				return fmt.Errorf("line %d: host %q already given on line %d", hl, h, prev)
			}
			hosts[h] = hl
		}
		for _, k := range []string{"default_ttl", "force_ttl"} {
			if v := valueOf(n, k); v != nil && strings.HasPrefix(strings.TrimSpace(v.Value), "-") {
				return fmt.Errorf("line %d: %s must not be negative", v.Line, k)
			}
		}
	}
	// Whatever else Config checks (no line to point at).
	cfg := f.Config()
	cfg.SigningKey = make([]byte, 64)
	return cfg.validate()
}

// valueOf returns the value node of key in mapping n, or nil.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
