package edge

// The HTTP/1.1 fast lane. net/http spends more per request than a cache
// hit needs: a background read goroutine per request, a read that finds
// nothing, a response writer built for every case. The lane reads plain
// HTTP/1.1 GET and HEAD requests for content itself and runs the same
// handler on them (handleContent, through serve: the same semantics,
// headers, metrics and logs) with a writer that sends a buffered response
// and its headers in one write. Everything else — a request with a body,
// an upgrade, HTTP/1.0, h2c, a header the lane's strict parser does not
// take, the swarm API — is handed, with the connection and every byte
// already read, to net/http, which keeps that connection from then on. A
// TLS connection is handed over at once.
//
// The lane is on for Server.Serve unless Config.DisableFastLane; the test
// harness (httptest with Handler) exercises net/http alone, and
// TestLaneMatchesNetHTTP checks that both answer alike.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

const (
	// laneReadBuf bounds a request head the lane parses; a longer one goes
	// to net/http (whose own limit is MaxHeaderBytes).
	laneReadBuf = 4 << 10
	// laneMaxHeaders bounds the header lines of a request the lane parses.
	laneMaxHeaders = 64
	// laneMaxBuffer is the most of a response body the lane holds to send
	// with the headers in one write (a whole hot-set object fits); past
	// it the response streams.
	laneMaxBuffer = 512 << 10
	// laneCopyMax: a body up to this size is copied behind the headers
	// for one write; a larger one goes out with them by writev.
	laneCopyMax = 16 << 10
	// Timeouts, as serveWith gives net/http.
	laneIdleTimeout   = 2 * time.Minute
	laneHeaderTimeout = 10 * time.Second
)

// lane serves one listener: its own accept loop, the connections it
// holds, and the net/http server it hands others to.
type lane struct {
	s    *Server
	ln   net.Listener
	hand *handoffListener

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
}

// serveLane runs the fast lane on ln until Close.
func (s *Server) serveLane(ln net.Listener) error {
	l := &lane{s: s, ln: ln, hand: newHandoffListener(ln.Addr()), conns: make(map[net.Conn]struct{})}
	srv := s.newHTTPServer(s.handler)
	if !s.track(srv) || !s.track(l) {
		srv.Close()
		ln.Close()
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l.hand) }()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if l.isClosed() {
				<-done
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// As net/http: back off on EMFILE and the like.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			l.Close()
			srv.Close()
			<-done
			return err
		}
		delay = 0
		if !l.add(c) {
			c.Close()
			continue
		}
		go l.serveConn(c)
	}
}

func (l *lane) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *lane) add(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *lane) drop(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Close stops accepting and closes the connections the lane holds (those
// handed to net/http close with its server).
func (l *lane) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	err := l.ln.Close()
	for c := range conns {
		c.Close()
	}
	l.hand.Close()
	return err
}

// serveConn serves c's requests while the lane can parse them.
func (l *lane) serveConn(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		l.handOff(c, nil)
		return
	}
	br := bufio.NewReaderSize(tc, laneReadBuf)
	w := &laneWriter{conn: tc, h: make(http.Header), sendTimeout: l.s.cfg.ClientSendTimeout}
	ctx, cancel := context.WithCancel(l.s.ctx)
	defer cancel()
	remote := tc.RemoteAddr().String()
	for {
		tc.SetReadDeadline(time.Now().Add(laneIdleTimeout))
		if _, err := br.Peek(1); err != nil {
			l.closeConn(tc)
			return
		}
		head, ok := l.readHead(tc, br)
		if !ok {
			l.handOff(tc, br)
			return
		}
		r, ok := laneRequest(head, remote)
		if !ok {
			l.handOff(tc, br)
			return
		}
		br.Discard(len(head))
		if !l.serveOne(w, r.WithContext(ctx)) {
			l.closeConn(tc)
			return
		}
	}
}

// readHead returns the request head (through its blank line) once it is
// buffered; false means it is not one the lane takes (a bare LF, too long,
// the connection failed: net/http answers or sees the failure).
func (l *lane) readHead(c net.Conn, br *bufio.Reader) ([]byte, bool) {
	deadline := false
	for {
		buf, _ := br.Peek(br.Buffered())
		n, state := headEnd(buf)
		switch {
		case state == headDone:
			return buf[:n], true
		case state == headBad || br.Buffered() >= laneReadBuf:
			return nil, false
		}
		if !deadline {
			c.SetReadDeadline(time.Now().Add(laneHeaderTimeout))
			deadline = true
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, false
		}
	}
}

type headState uint8

const (
	headMore headState = iota
	headDone
	headBad
)

// headEnd finds the end of a request head in buf: every line must end in
// CRLF, and the head ends at the first empty line.
func headEnd(buf []byte) (int, headState) {
	start := 0
	for {
		i := bytes.IndexByte(buf[start:], '\n')
		if i < 0 {
			return 0, headMore
		}
		end := start + i
		if end == 0 || buf[end-1] != '\r' {
			return 0, headBad
		}
		if end-1 == start {
			if start == 0 {
				return 0, headBad // a leading empty line: net/http's to skip
			}
			return end + 1, headDone
		}
		start = end + 1
	}
}

// laneRequest parses head as a lane request: GET or HEAD of a content path,
// HTTP/1.1, no body, no upgrade, one valid Host, every header line well
// formed. Anything else is net/http's.
func laneRequest(head []byte, remote string) (*http.Request, bool) {
	lines := strings.Split(string(head[:len(head)-4]), "\r\n")
	if len(lines) > laneMaxHeaders+1 {
		return nil, false
	}
	method, rest, ok1 := strings.Cut(lines[0], " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || (method != http.MethodGet && method != http.MethodHead) ||
		len(target) == 0 || target[0] != '/' {
		return nil, false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return nil, false
		}
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || routeKind(u.Path) != "content" {
		return nil, false
	}
	h := make(http.Header, len(lines)-1)
	host, hosts, closeConn := "", 0, false
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			return nil, false
		}
		value = strings.Trim(value, " \t")
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < ' ' && c != '\t') || c >= 0x7f {
				return nil, false
			}
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		switch key {
		case "Host":
			host, hosts = value, hosts+1
			continue
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer", "Http2-Settings":
			return nil, false
		case "Connection":
			for tok := range strings.SplitSeq(value, ",") {
				switch strings.ToLower(strings.TrimSpace(tok)) {
				case "keep-alive":
				case "close":
					closeConn = true
				default:
					return nil, false
				}
			}
		}
		h[key] = append(h[key], value)
	}
	if hosts != 1 || !httpguts.ValidHostHeader(host) {
		return nil, false
	}
	return &http.Request{
		Method: method, URL: u, Proto: proto, ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host, RemoteAddr: remote, RequestURI: target, Close: closeConn,
	}, true
}

// serveOne runs the content handler on r and sends the response; false
// means the connection must close (asked for, aborted, or failed).
func (l *lane) serveOne(w *laneWriter, r *http.Request) (keep bool) {
	l.s.stats.laneRequests.Add(1)
	w.reset(r)
	defer w.releaseFile()
	defer func() {
		if v := recover(); v != nil {
			// serve aborts a response whose headers are out this way, as
			// net/http's handlers do: the connection is cut.
			if v != http.ErrAbortHandler {
				l.s.log.Error("lane: handler panic", "panic", v, "uri", truncate(r.RequestURI, 200))
			}
			keep = false
		}
	}()
	l.s.serve(w, r, "content", l.s.handleContent)
	return w.finish() == nil && !r.Close && !w.mustClose && !strings.EqualFold(w.h.Get("Connection"), "close")
}

func (l *lane) closeConn(c net.Conn) {
	l.drop(c)
	c.Close()
}

// handOff gives c to net/http with what has been read of it.
func (l *lane) handOff(c net.Conn, br *bufio.Reader) {
	l.drop(c)
	l.s.stats.laneHandoffs.Add(1)
	c.SetReadDeadline(time.Time{})
	if tc, ok := c.(*net.TCPConn); ok && br != nil {
		c = &bufferedConn{TCPConn: tc, r: br}
	}
	if !l.hand.push(c) {
		c.Close()
	}
}

// bufferedConn is a TCP connection whose first bytes were read into r.
// It keeps the TCPConn's ReadFrom (sendfile) and CloseWrite for net/http.
type bufferedConn struct {
	*net.TCPConn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// handoffListener is the listener net/http serves: the connections the
// lane hands over.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) push(c net.Conn) bool {
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return h.addr }

// laneWriter is the lane's http.ResponseWriter: the status, headers and
// up to laneMaxBuffer of body go out in one write when the handler
// returns; a longer body streams after them.
type laneWriter struct {
	conn      net.Conn
	h         http.Header
	head      bool // a HEAD request: no body
	status    int  // 0 until WriteHeader
	body      []byte
	shared    []byte   // a body given by writeShared, sent from where it is
	file      *hotFile // shared's hot file, referenced, to send it from
	fileOff   int64    // where shared starts in file
	out       []byte
	streaming bool // the headers are out; writes go straight to conn
	mustClose bool // the body's end is the connection's end
	closeReq  bool
	err       error

	sendTimeout time.Duration // Config.ClientSendTimeout
	deadline    bool          // the handler set a write deadline for this response
}

func (w *laneWriter) reset(r *http.Request) {
	clear(w.h)
	w.head = r.Method == http.MethodHead
	w.releaseFile()
	w.status, w.body, w.shared, w.deadline = 0, w.body[:0], nil, false
	w.streaming, w.mustClose, w.closeReq, w.err = false, false, r.Close, nil
}

func (w *laneWriter) Header() http.Header { return w.h }

func (w *laneWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return // 1xx: the lane takes no request that expects one
	}
	w.status = code
}

func (w *laneWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.head || !bodyAllowed(w.status) {
		return len(p), nil
	}
	if !w.streaming && len(w.body)+len(w.shared)+len(p) <= laneMaxBuffer {
		w.unshare()
		w.body = append(w.body, p...)
		return len(p), nil
	}
	if !w.streaming {
		if err := w.startStream(); err != nil {
			return 0, err
		}
	}
	n, err := w.conn.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// writeShared is Write for a p that stays unchanged until the response is
// sent (a hot-set copy): a body written whole this way is sent from p,
// not copied first.
func (w *laneWriter) writeShared(p []byte, hf *hotFile, off int64) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.streaming || w.err != nil || len(w.body) > 0 || w.shared != nil {
		return w.Write(p)
	}
	if w.head || !bodyAllowed(w.status) {
		return len(p), nil
	}
	w.shared = p
	if hf != nil && len(p) > laneCopyMax {
		hf.c.retainHot(hf) // the reader lets go before the response is sent
		w.file, w.fileOff = hf, off
	}
	return len(p), nil
}

// releaseFile gives back the hot file a response was to send from.
func (w *laneWriter) releaseFile() {
	if w.file != nil {
		w.file.c.releaseHot(w.file)
		w.file = nil
	}
}

// unshare copies a shared body into the buffer, before more is written.
func (w *laneWriter) unshare() {
	if w.shared != nil {
		w.body = append(w.body, w.shared...)
		w.shared = nil
		w.releaseFile()
	}
}

// ReadFrom sends a file section after the headers with sendfile(2) where
// the source allows it (as net/http's writer does): recorder.ReadFrom
// passes a file section here, and an in-memory body to Write.
func (w *laneWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.head || !bodyAllowed(w.status) {
		return 0, nil
	}
	if !w.streaming {
		if err := w.startStreamMore(true); err != nil {
			return 0, err
		}
	}
	rf, ok := w.conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(onlyWriter{w.conn}, src)
	}
	n, err := rf.ReadFrom(src)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what is buffered: the response streams from then on.
func (w *laneWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.streaming && w.err == nil {
		w.startStream()
	}
}

// SetWriteDeadline is what http.ResponseController finds for the
// handler's send timeout.
func (w *laneWriter) SetWriteDeadline(t time.Time) error {
	w.deadline = true
	return w.conn.SetWriteDeadline(t)
}

// sendDeadline gives the response's first write the send timeout unless
// the handler set a deadline (a HEAD or a shared body writes nothing
// before it; the connection's deadline may be a past request's).
func (w *laneWriter) sendDeadline() {
	if !w.deadline && w.sendTimeout > 0 {
		w.SetWriteDeadline(time.Now().Add(w.sendTimeout))
	}
}

// startStream sends the headers and the buffered body; the rest follows
// as written, delimited by its Content-Length or else by closing.
func (w *laneWriter) startStream() error { return w.startStreamMore(false) }

// startStreamMore is startStream; more says the body follows at once (a
// sendfile), so the headers may wait to leave in its first segment.
func (w *laneWriter) startStreamMore(more bool) error {
	w.unshare()
	w.sendDeadline()
	w.streaming = true
	w.out = w.appendHead(w.out[:0], false)
	w.out = append(w.out, w.body...)
	w.body = w.body[:0]
	var err error
	if more {
		err = writeMore(w.conn, w.out)
	} else {
		_, err = w.conn.Write(w.out)
	}
	if err != nil {
		w.err = err
	}
	return w.err
}

// finish sends the response if it is still buffered.
func (w *laneWriter) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.streaming || w.err != nil {
		return w.err
	}
	if w.shared != nil && len(w.shared) <= laneCopyMax {
		w.unshare()
	}
	w.sendDeadline()
	w.out = w.appendHead(w.out[:0], true)
	var err error
	sent := false
	if w.file != nil && !w.head {
		// From the page cache by sendfile, if the file is still the one
		// whose data was checked; else from the memory copy.
		sent, err = sendHeadAndFile(w.conn, w.out, w.file, w.fileOff, int64(len(w.shared)))
		if sent {
			w.file.c.hot.sent.Add(1)
		}
	}
	switch {
	case sent:
	case w.shared != nil && !w.head:
		bufs := net.Buffers{w.out, w.shared} // one writev, no copy
		_, err = bufs.WriteTo(w.conn)
	case w.head || len(w.body) == 0:
		_, err = w.conn.Write(w.out)
	case len(w.body) <= laneCopyMax:
		w.out = append(w.out, w.body...)
		_, err = w.conn.Write(w.out)
	default:
		bufs := net.Buffers{w.out, w.body} // one writev
		_, err = bufs.WriteTo(w.conn)
	}
	if err != nil {
		w.err = err
	}
	return w.err
}

// appendHead writes the status line and headers as net/http would:
// Content-Length of a whole buffered body, a sniffed Content-Type, Date.
func (w *laneWriter) appendHead(b []byte, whole bool) []byte {
	h := w.h
	if bodyAllowed(w.status) {
		if _, ok := h["Content-Length"]; !ok {
			switch {
			case whole && !w.head:
				h["Content-Length"] = []string{strconv.Itoa(len(w.body) + len(w.shared))}
			case !whole:
				w.mustClose = true
			}
		}
		if _, ok := h["Content-Type"]; !ok && len(w.body)+len(w.shared) > 0 {
			b := w.body
			if w.shared != nil {
				b = w.shared
			}
			h["Content-Type"] = []string{http.DetectContentType(b)}
		}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{httpDate()}
	}
	if w.mustClose || w.closeReq {
		h["Connection"] = []string{"close"}
	}
	text := http.StatusText(w.status)
	if text == "" {
		text = "status code " + strconv.Itoa(w.status)
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, "\r\n"...)
	// Unsorted (order carries no meaning in HTTP); values cleaned of CR
	// and LF as Header.Write does, names of anything but token bytes
	// dropped as net/http does.
	for k, vs := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			start := len(b)
			b = append(b, textproto.TrimString(v)...)
			for i := start; i < len(b); i++ {
				if b[i] == '\r' || b[i] == '\n' {
					b[i] = ' '
				}
			}
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// dateCache is the Date header of the current second.
var dateCache atomic.Pointer[dateStamp]

type dateStamp struct {
	unix int64
	text string
}

// httpDate is the current time as a Date header value, formatted once a
// second.
func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.unix == now.Unix() {
		return d.text
	}
	d := &dateStamp{unix: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

// bodyAllowed: 204 and 304 have none (1xx never reach here).
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

var _ io.Writer = (*laneWriter)(nil)
