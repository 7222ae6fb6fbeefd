package edge

// Pre-positioning: an operator orders objects to be fetched by managed
// caches ahead of demand, optionally only inside a daily time window (off
// hours). Orders live in an order book kept in the cache directory, so a
// restart keeps them; managed caches poll for the orders of their network
// location (wire.PathOrders) and report the ones they have carried out.

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// ordersFile is the order book's file in the cache directory.
const ordersFile = "prefetch-orders.json"

// maxOrderBody bounds a POST /prefetch body.
const maxOrderBody = 1 << 20

// orderBook holds the pre-positioning orders. Its methods are safe for
// concurrent use.
type orderBook struct {
	path string // where the book is saved; "" keeps it in memory only

	mu     sync.Mutex
	orders []*Order // guarded by mu; oldest first, at most wire.MaxOrders
}

// Order is a pre-positioning order as the admin API shows it.
type Order struct {
	wire.Order
	Created time.Time `json:"created"`
	// DoneBy lists the managed caches that reported holding every object of
	// the order, at most maxDoneBy of them.
	DoneBy []OrderDone `json:"done_by"`
}

// OrderDone is one managed cache's report that it carried out an order.
type OrderDone struct {
	PeerID string    `json:"peer_id"`
	PID    string    `json:"pid,omitempty"`
	At     time.Time `json:"at"`
}

const maxDoneBy = 1000

// loadOrders reads the order book saved in dir; a missing file is an empty
// book, an unreadable one is an error that names the file.
func loadOrders(dir string) (*orderBook, error) {
	b := &orderBook{}
	if dir == "" {
		return b, nil
	}
	b.path = filepath.Join(dir, ordersFile)
	data, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("edge: prefetch orders: %w", err)
	}
	if err := json.Unmarshal(data, &b.orders); err != nil {
		return nil, fmt.Errorf("edge: prefetch orders %s: %w (move the file away to start with no orders)", b.path, err)
	}
	if len(b.orders) > wire.MaxOrders {
		b.orders = b.orders[len(b.orders)-wire.MaxOrders:]
	}
	return b, nil
}

// saveLocked writes the book (temp file, fsync, rename).
func (b *orderBook) saveLocked() error {
	if b.path == "" {
		return nil
	}
	data, err := json.Marshal(b.orders)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(b.path), ordersFile+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), b.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// checkOrder validates an order as posted: object paths, the window and
// the locations (pids must be in the network map's; none without a map).
func (s *Server) checkOrder(o *wire.Order) error {
	switch {
	case len(o.URLs) == 0:
		return errorf(http.StatusBadRequest, "order: no urls")
	case len(o.URLs) > wire.MaxOrderURLs:
		return errorf(http.StatusBadRequest, "order: %d urls, at most %d", len(o.URLs), wire.MaxOrderURLs)
	case len(o.PIDs) > 1000:
		return errorf(http.StatusBadRequest, "order: %d pids, at most 1000", len(o.PIDs))
	}
	for _, raw := range o.URLs {
		u, err := url.ParseRequestURI(raw)
		if err != nil || u.Scheme != "" || u.Host != "" || len(raw) > 4096 {
			return errorf(http.StatusBadRequest, "order: url %q: want a path such as /videos/a.mp4", truncate(raw, 80))
		}
	}
	if o.Window != "" {
		if _, err := wire.ParseWindow(o.Window); err != nil {
			return errorf(http.StatusBadRequest, "order: %v", err)
		}
	}
	if len(o.PIDs) > 0 {
		m := s.cfg.NetworkMap
		if m == nil {
			return errorf(http.StatusBadRequest, "order: pids given, but this edge has no network map")
		}
		for _, pid := range o.PIDs {
			if !slices.Contains(m.PIDs(), pid) {
				return errorf(http.StatusBadRequest, "order: pid %q is not in the network map", truncate(pid, 64))
			}
		}
	}
	return nil
}

// handlePrefetch serves the order book on the admin listener:
// POST /prefetch (a wire.Order without id → 201 and the order),
// GET /prefetch (every order and who carried it out), DELETE /prefetch/ID.
func (s *Server) handlePrefetch(w http.ResponseWriter, r *http.Request) error {
	b := s.orders
	id, hasID := strings.CutPrefix(r.URL.Path, "/prefetch/")
	switch {
	case r.Method == http.MethodPost && !hasID:
		var o wire.Order
		dec := json.NewDecoder(io.LimitReader(r.Body, maxOrderBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return errorf(http.StatusBadRequest, "order body: %v", err)
		}
		ord, err := s.PlaceOrder(o)
		if err != nil {
			return err
		}
		out, err := json.Marshal(ord)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, err = w.Write(append(out, '\n'))
		return err
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && !hasID:
		b.mu.Lock()
		out, err := json.Marshal(struct {
			Orders []*Order `json:"orders"`
		}{append([]*Order{}, b.orders...)})
		b.mu.Unlock()
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, err = w.Write(append(out, '\n'))
		return err
	case r.Method == http.MethodDelete && hasID:
		b.mu.Lock()
		i := slices.IndexFunc(b.orders, func(o *Order) bool { return o.ID == id })
		if i < 0 {
			b.mu.Unlock()
			return errorf(http.StatusNotFound, "no prefetch order %q", truncate(id, 40))
		}
		b.orders = slices.Delete(b.orders, i, i+1)
		err := b.saveLocked()
		b.mu.Unlock()
		if err != nil {
			return fmt.Errorf("save prefetch orders: %w", err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "admin: %s %s: want POST /prefetch, GET /prefetch or DELETE /prefetch/ID", r.Method, truncate(r.URL.Path, 80))
}

// PlaceOrder validates o, gives it an id and adds it to the order book (the
// admin POST /prefetch).
func (s *Server) PlaceOrder(o wire.Order) (Order, error) {
	if err := s.checkOrder(&o); err != nil {
		return Order{}, err
	}
	var rb [8]byte
	rand.Read(rb[:])
	o.ID = hex.EncodeToString(rb[:])
	ord := &Order{Order: o, Created: s.now().UTC(), DoneBy: []OrderDone{}}
	b := s.orders
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.orders) >= wire.MaxOrders {
		return Order{}, errorf(http.StatusConflict, "order book full: %d orders; delete some first", wire.MaxOrders)
	}
	b.orders = append(b.orders, ord)
	if err := b.saveLocked(); err != nil {
		b.orders = b.orders[:len(b.orders)-1]
		return Order{}, fmt.Errorf("save prefetch orders: %w", err)
	}
	s.log.Info("prefetch order", "id", o.ID, "urls", len(o.URLs), "window", o.Window, "pids", o.PIDs)
	return *ord, nil
}

// handleOrders serves wire.PathOrders to managed caches.
func (s *Server) handleOrders(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	var req wire.OrdersRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if !s.tracker.Authenticate(req.PeerID, req.Token) {
		return errorf(http.StatusUnauthorized, "unknown peer id or bad token")
	}
	pid, _, managed := s.tracker.Describe(req.PeerID)
	if !managed {
		return errorf(http.StatusForbidden, "orders are for managed caches; this peer did not register as one")
	}
	if len(req.Done) > wire.MaxOrders {
		return errorf(http.StatusBadRequest, "done: %d ids, at most %d", len(req.Done), wire.MaxOrders)
	}
	if !s.tracker.Touch(req.PeerID) {
		return errorf(http.StatusForbidden, "peer %s is banned", truncate(req.PeerID, 40))
	}
	now := s.now().UTC()
	resp := wire.OrdersResponse{Orders: []wire.Order{}, PollIntervalMs: int(s.ordersPoll().Milliseconds())}
	b := s.orders
	b.mu.Lock()
	changed := false
	for _, o := range b.orders {
		if len(o.PIDs) > 0 && !slices.Contains(o.PIDs, pid) {
			continue
		}
		if slices.Contains(req.Done, o.ID) && len(o.DoneBy) < maxDoneBy &&
			!slices.ContainsFunc(o.DoneBy, func(d OrderDone) bool { return d.PeerID == req.PeerID }) {
			o.DoneBy = append(o.DoneBy, OrderDone{PeerID: req.PeerID, PID: pid, At: now})
			changed = true
			s.log.Info("prefetch order carried out", "id", o.ID, "cache", req.PeerID, "pid", pid)
		}
		resp.Orders = append(resp.Orders, o.Order)
	}
	var err error
	if changed {
		err = b.saveLocked()
	}
	b.mu.Unlock()
	if err != nil {
		s.log.Error("save prefetch orders", "err", err)
	}
	return writeJSON(w, resp)
}

func (s *Server) ordersPoll() time.Duration {
	if s.cfg.OrdersPollInterval > 0 {
		return s.cfg.OrdersPollInterval
	}
	return 30 * time.Second
}

// managedAuthorized checks a managed cache's registration token.
func (s *Server) managedAuthorized(tok string) bool {
	want := s.cfg.ManagedToken
	return want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

// Orders returns the order book (the admin GET /prefetch).
func (s *Server) Orders() []Order {
	b := s.orders
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Order, len(b.orders))
	for i, o := range b.orders {
		out[i] = *o
		out[i].DoneBy = slices.Clone(o.DoneBy)
	}
	return out
}
