package wire

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// Errors from chunk fetches; a scheduler uses them to tell a missing chunk
// from a misbehaving source.
var (
	ErrChunkNotFound = errors.New("source does not hold the chunk")
	ErrChunkTooLarge = errors.New("chunk response longer than the chunk")
	ErrChunkShort    = errors.New("chunk response shorter than the chunk")
	// ErrBusy: the server refused for load (503); ask again later.
	ErrBusy = errors.New("server busy")
)

// StatusError is a non-2xx answer from an edge or a peer. errors.Is(err,
// ErrBusy) holds for a 503 and errors.Is(err, ErrChunkNotFound) for a 404 on
// the chunk path.
type StatusError struct {
	Op   string // e.g. "POST /swarm/v1/announce"
	Code int
	Msg  string // the first line of the body, trimmed
}

func (e *StatusError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("%s: %d %s", e.Op, e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("%s: %d %s: %s", e.Op, e.Code, http.StatusText(e.Code), e.Msg)
}

// Unwrap maps the statuses callers act on to sentinels.
func (e *StatusError) Unwrap() error {
	switch {
	case e.Code == http.StatusServiceUnavailable:
		return ErrBusy
	case e.Code == http.StatusNotFound && strings.Contains(e.Op, PathChunk):
		return ErrChunkNotFound
	}
	return nil
}

// StatusCode returns the HTTP status carried by err, or 0.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func statusError(op string, resp *http.Response) *StatusError {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	line, _, _ := strings.Cut(string(bytes.TrimSpace(msg)), "\n")
	return &StatusError{Op: op, Code: resp.StatusCode, Msg: line}
}

// FetchChunk GETs chunk index of root from base (a URL such as
// "http://10.0.0.2:7001") and returns exactly size bytes read into buf
// (grown if needed). It refuses a response that announces or carries any
// other length before buffering more than size bytes, so memory per request
// is bounded by the chunk size. It does not verify the hash.
func FetchChunk(ctx context.Context, hc *http.Client, base string, root core.Hash, index, size int, peerID string, buf []byte) ([]byte, error) {
	return FetchChunkProgress(ctx, hc, base, root, index, size, peerID, buf, nil)
}

// FetchChunkProgress is FetchChunk that also calls progress (if not nil)
// in the calling goroutine: with 0 once a 200 response's header is in, then
// with the bytes of the chunk received so far each time more arrive. A
// caller tells a slow transfer from a stalled one by it, and measures the
// time to the first byte.
func FetchChunkProgress(ctx context.Context, hc *http.Client, base string, root core.Hash, index, size int, peerID string, buf []byte, progress func(n int)) ([]byte, error) {
	return FetchChunkAuth(ctx, hc, base, root, index, size, peerID, nil, buf, progress)
}

// FetchChunkAuth is FetchChunkProgress that calls sign, if not nil, on the
// request before sending it: a peer sets its Authorization there
// (SignChunkRequest) when it asks another peer.
func FetchChunkAuth(ctx context.Context, hc *http.Client, base string, root core.Hash, index, size int, peerID string, sign func(*http.Request), buf []byte, progress func(n int)) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+ChunkPath(root, index), nil)
	if err != nil {
		return nil, err
	}
	if peerID != "" {
		req.Header.Set(HeaderPeerID, peerID)
	}
	if sign != nil {
		sign(req)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil, statusError("GET "+base+ChunkPath(root, index), resp)
	case resp.ContentLength > int64(size):
		return nil, fmt.Errorf("chunk %d from %s: Content-Length %d, want %d: %w", index, base, resp.ContentLength, size, ErrChunkTooLarge)
	case resp.ContentLength >= 0 && resp.ContentLength < int64(size):
		return nil, fmt.Errorf("chunk %d from %s: Content-Length %d, want %d: %w", index, base, resp.ContentLength, size, ErrChunkShort)
	}
	if cap(buf) < size {
		buf = make([]byte, size, size+1)
	}
	buf = buf[:size]
	if progress != nil {
		progress(0)
	}
	n, err := 0, error(nil)
	for n < size && err == nil {
		var k int
		k, err = resp.Body.Read(buf[n:])
		n += k
		if progress != nil && k > 0 {
			progress(n)
		}
	}
	if n < size {
		if err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = ErrChunkShort
		}
		return nil, fmt.Errorf("chunk %d from %s: got %d of %d bytes: %w", index, base, n, size, err)
	}
	// The response must end right here, cleanly: one more byte means the
	// source sent more than the chunk; an error means the stream broke, and
	// a broken response is not accepted even if the chunk looks whole.
	var one [1]byte
	switch k, err := io.ReadFull(resp.Body, one[:]); {
	case k > 0:
		return nil, fmt.Errorf("chunk %d from %s: %w", index, base, ErrChunkTooLarge)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("chunk %d from %s: response did not end after the chunk: %w", index, base, err)
	}
	return buf[:size], nil
}

// EdgeClient speaks the swarm API of one edge.
type EdgeClient struct {
	Base string // e.g. "http://127.0.0.1:8080"
	HTTP *http.Client
}

// Keys fetches the edge tier's manifest-signing keys.
func (c *EdgeClient) Keys(ctx context.Context) (core.KeyRing, error) {
	var kr KeyResponse
	if err := c.do(ctx, http.MethodGet, PathKey, nil, &kr); err != nil {
		return nil, err
	}
	ring := core.KeyRing{}
	for _, k := range kr.Keys {
		if len(k.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("edge key %q: %d bytes", k.ID, len(k.PublicKey))
		}
		pub := ed25519.PublicKey(k.PublicKey)
		ring[core.KeyIDOf(pub)] = pub
	}
	if len(ring) == 0 {
		return nil, errors.New("edge published no keys")
	}
	return ring, nil
}

// Manifest fetches and verifies the manifest of objectURL (a path such as
// "/videos/a.mp4").
func (c *EdgeClient) Manifest(ctx context.Context, objectURL string, ring core.KeyRing) (*core.Manifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+PathManifest+"?url="+url.QueryEscape(objectURL), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", objectURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("manifest of %s: %w", objectURL, statusError("GET "+PathManifest, resp))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestBody+1))
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", objectURL, err)
	}
	if len(body) > MaxManifestBody {
		return nil, fmt.Errorf("manifest of %s: larger than %d bytes", objectURL, MaxManifestBody)
	}
	m, err := core.ParseManifest(body, ring)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", objectURL, err)
	}
	return m, nil
}

// Register enrolls a peer.
func (c *EdgeClient) Register(ctx context.Context, r RegisterRequest) (RegisterResponse, error) {
	var out RegisterResponse
	err := c.do(ctx, http.MethodPost, PathRegister, r, &out)
	return out, err
}

// Announce reports holdings and returns a hand-out.
func (c *EdgeClient) Announce(ctx context.Context, r AnnounceRequest) (AnnounceResponse, error) {
	var out AnnounceResponse
	err := c.do(ctx, http.MethodPost, PathAnnounce, r, &out)
	if len(out.Peers) > MaxHandout {
		out.Peers = out.Peers[:MaxHandout]
	}
	return out, err
}

// Orders asks for a managed cache's pre-positioning orders.
func (c *EdgeClient) Orders(ctx context.Context, r OrdersRequest) (OrdersResponse, error) {
	var out OrdersResponse
	err := c.do(ctx, http.MethodPost, PathOrders, r, &out)
	if len(out.Orders) > MaxOrders {
		out.Orders = out.Orders[:MaxOrders]
	}
	return out, err
}

// Report tells the edge about a misbehaving peer (ReportRequest.Kind).
func (c *EdgeClient) Report(ctx context.Context, r ReportRequest) error {
	return c.do(ctx, http.MethodPost, PathReport, r, nil)
}

func (c *EdgeClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusError(method+" "+path, resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, MaxJSONBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxJSONBody)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	// Read to the end (the encoder's newline): a body closed before its
	// end costs the connection, and the next request a new one.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return nil
}
