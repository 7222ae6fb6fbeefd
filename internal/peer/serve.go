package peer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// uploadWriteTimeout bounds one chunk upload, so a stalled downloader
// cannot hold an upload slot forever.
const uploadWriteTimeout = 60 * time.Second

// Handler serves other peers: GET wire.PathChunk{root}/{index} returns a
// held chunk to a peer that shows a valid ticket (verified again before it
// is sent, at most UploadLimitBps; 401 without a valid ticket, 403 for a
// revoked peer or when uploading is off, 404 if not held, 503 when every
// upload slot is busy, 503 with Retry-After while idle-only uploading waits
// for the user to be idle) and GET /healthz answers ok.
func (a *Agent) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		case len(r.URL.Path) > len(wire.PathChunk) && r.URL.Path[:len(wire.PathChunk)] == wire.PathChunk:
			if err := a.serveChunk(w, r); err != nil {
				writeError(w, err)
			}
		default:
			http.NotFound(w, r)
		}
	})
}

// httpError carries a status for writeError.
type httpError struct {
	code       int
	msg        string
	retryAfter time.Duration // for a 503; 0 means 1 s
}

func (e *httpError) Error() string { return e.msg }

// writeError maps a handler's error to a status: one place for all of them.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.Is(err, chunkstore.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrClosed), errors.Is(err, chunkstore.ErrClosed):
		code = http.StatusServiceUnavailable
	}
	if code == http.StatusServiceUnavailable {
		ra := time.Duration(0)
		if he != nil {
			ra = he.retryAfter
		}
		w.Header().Set("Retry-After", retryAfter(ra))
	}
	http.Error(w, err.Error(), code)
}

func (a *Agent) serveChunk(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return &httpError{code: http.StatusMethodNotAllowed, msg: "method not allowed"}
	}
	root, i, err := wire.ParseChunkPath(r.URL.Path)
	if err != nil {
		return &httpError{code: http.StatusBadRequest, msg: err.Error()}
	}
	if err := a.admitUpload(); err != nil {
		return err
	}
	if err := a.authorize(w, r); err != nil {
		return err
	}
	d := a.liveDownload(root)
	if d == nil || !d.holds(i) {
		return &httpError{code: http.StatusNotFound, msg: "chunk not held"}
	}
	// Held now, so held until served: the store does not evict it while
	// pinned (a chunk evicted since holds was asked reads as not found).
	defer d.obj.Pin(i, 1)()
	select {
	case a.uploads <- struct{}{}:
		defer func() { <-a.uploads }()
	default:
		a.upBusy.Add(1)
		return &httpError{code: http.StatusServiceUnavailable, msg: "upload slots busy"}
	}
	bp := d.getBuf()
	defer d.putBuf(bp)
	data, err := d.obj.ReadChunk(i, *bp)
	if err != nil {
		return err
	}
	// Never serve bytes that do not verify, whatever happened on disk.
	if err := d.m.CheckChunk(i, data); err != nil {
		a.log.Error("held chunk fails verification; not serving it", "err", err)
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if r.Method == http.MethodHead {
		return nil
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(uploadWriteTimeout))
	if _, err := a.writeUpload(r.Context(), w, data); err == nil {
		a.upChunks.Add(1)
	}
	return nil // the status line is sent: nothing more to report to the client
}

// Serve serves Handler on ln until Close, with at most MaxConns
// connections open. The demo passes a listener shaped as this peer's
// upload link.
func (a *Agent) Serve(ln net.Listener) error {
	ln = &connLimiter{Listener: ln, slots: a.conns, refused: &a.connsOff}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	a.servers = append(a.servers, srv)
	a.mu.Unlock()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("peer: serve: %w", err)
	}
	return nil
}
