package edge

// One wrapper maps handler errors to HTTP statuses (Kraken's handler.Wrap),
// counts bytes and writes the access log.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/swarm"
)

// errAbort marks an error after which the response must be cut off, not
// completed: the client must see a broken transfer, never a short body
// that looks whole.
var errAbort = errors.New("response aborted")

// statusError carries the HTTP status a handler chose.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to the status and the one-line message sent.
func statusOf(err error) (int, string) {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.code, se.msg
	case errors.Is(err, swarm.ErrInvalidArgument), errors.Is(err, swarm.ErrBitfieldLength):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, swarm.ErrUnknownPeer):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, swarm.ErrBanned), errors.Is(err, swarm.ErrRevoked):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, swarm.ErrStaleRegistration):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, swarm.ErrTooManyRevoked):
		return http.StatusInsufficientStorage, err.Error()
	case errors.Is(err, swarm.ErrTooManyPeers), errors.Is(err, swarm.ErrTooManyObjects), errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, errNotCached):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, errOrigin) && errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, err.Error()
	case errors.Is(err, errOrigin):
		return http.StatusBadGateway, err.Error()
	}
	return http.StatusInternalServerError, "internal error"
}

// serve runs h and turns its error into a response.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, kind string, h func(http.ResponseWriter, *http.Request) error) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, sendTimeout: s.cfg.ClientSendTimeout}
	err := h(rec, r)
	if kind == "content" {
		s.stats.contentBytes.Add(rec.bytes)
		s.metrics.contentBytes.Add(float64(rec.bytes))
	}
	// Content and admin requests are the access log (info); the swarm's
	// chunk and announce traffic, many per second per peer, is debug.
	level := slog.LevelDebug
	if kind == "content" || kind == "admin" {
		level = slog.LevelInfo
	}
	switch {
	case err == nil:
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
		// The client left; there is no one to answer.
	case errors.Is(err, errAbort) || rec.status != 0:
		// Headers are out: the only honest thing left is to cut the
		// connection, so a short body is never taken for a whole one.
		s.log.Debug("response aborted", "method", r.Method, "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	default:
		code, msg := statusOf(err)
		if code >= 500 {
			level = slog.LevelWarn
		}
		msg = strings.ReplaceAll(msg, "\n", " ")
		http.Error(rec, msg, code)
	}
	if s.log.Enabled(r.Context(), level) { // the arguments cost more than a hit
		s.log.Log(r.Context(), level, "access", "kind", kind, "method", r.Method, "uri", truncate(r.URL.RequestURI(), 200),
			"status", rec.code(), "bytes", rec.bytes, "cache", rec.Header().Get("X-Cache"),
			"dur", time.Since(start), "remote", r.RemoteAddr, "err", err)
	}
}

// recorder remembers the status and counts body bytes, and gives every
// write to the client sendTimeout to make progress (nginx's send_timeout):
// a client that stops reading loses its connection instead of holding a
// handler forever.
type recorder struct {
	http.ResponseWriter
	status      int   // 0 until headers are written
	bytes       int64 // body bytes written
	sendTimeout time.Duration
	rc          *http.ResponseController
}

// sendfileStep is how much one sendfile run may send before the write
// deadline is extended again.
const sendfileStep = 1 << 20

func (r *recorder) extend() {
	if r.sendTimeout <= 0 {
		return
	}
	if r.rc == nil {
		r.rc = http.NewResponseController(r.ResponseWriter)
	}
	_ = r.rc.SetWriteDeadline(time.Now().Add(r.sendTimeout))
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.extend()
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// sharedWriter is the fast lane's writer: it may send p (which never
// changes) without copying it, or the same bytes from hf at off.
type sharedWriter interface {
	writeShared(p []byte, hf *hotFile, off int64) (int, error)
}

// onlyWriter hides a writer's ReadFrom, so io.Copy goes through Write.
type onlyWriter struct{ io.Writer }

// ReadFrom keeps the connection's zero-copy path: net/http's own
// ResponseWriter sends a file (an *os.File, or a reader exposing its
// syscall.Conn such as a verified cache object) with sendfile(2), which
// wrapping the writer would otherwise hide from io.Copy.
// A file section (ServeContent's io.LimitedReader) goes out in
// sendfileStep runs, the deadline extended before each; a section of a
// version in memory in one Write; anything else is copied through Write.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	lr, ok := src.(*io.LimitedReader)
	if !ok {
		return io.Copy(onlyWriter{r}, src)
	}
	if or, ok := lr.R.(*objectReader); ok && or.mode == modeMemory {
		// Already in memory: one write, which net/http sends with the
		// headers in one packet when it fits its buffer. A hot-set copy
		// never changes, so the lane may send it without copying it.
		p, off := or.next(lr.N)
		var n int
		var err error
		if sw, ok := r.ResponseWriter.(sharedWriter); ok && or.immutable() {
			r.extend()
			n, err = sw.writeShared(p, or.hf, off)
			r.bytes += int64(n)
		} else {
			n, err = r.Write(p)
		}
		lr.N -= int64(n)
		return int64(n), err
	}
	var total int64
	for lr.N > 0 {
		step := &io.LimitedReader{R: lr.R, N: min(lr.N, sendfileStep)}
		r.extend()
		n, err := io.Copy(r.ResponseWriter, step)
		lr.N -= n
		total += n
		r.bytes += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			break // the source ended early
		}
	}
	return total, nil
}

func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush passes flushes through.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func lower(s string) string { return strings.ToLower(s) }
