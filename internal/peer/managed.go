package peer

// A managed cache (Config.Managed) carries out its edge's pre-positioning
// orders: it fetches the ordered objects ahead of demand, inside each
// order's time window, and reports the orders it has carried out.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// errWindowClosed stops a pre-positioning transfer at the end of its window.
var errWindowClosed = errors.New("peer: the order's time window closed")

// OrderStats counts a managed cache's pre-positioning work.
type OrderStats struct {
	Polls, PollErrors int64
	// Done lists the orders carried out (every object held), by id.
	Done []string
	// Stopped counts transfers stopped at the end of their window (they
	// resume, from what is held, when it opens again).
	Stopped int64
}

// RunOrders polls the edge for pre-positioning orders and carries them
// out, one object at a time, until ctx ends or the agent closes. An order
// with a window is fetched only inside it: a transfer still running when
// the window closes is stopped and resumes, from the chunks held, in the
// next window. It returns an error at once if the agent is not Managed.
func (a *Agent) RunOrders(ctx context.Context) error {
	if !a.cfg.Managed {
		return errors.New("peer: pre-positioning orders are for managed caches (Config.Managed)")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-a.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	poll := 30 * time.Second
	for {
		next := poll
		orders, iv, err := a.pollOrders(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.log.Warn("pre-positioning orders", "err", err)
		} else {
			if iv > 0 {
				poll, next = iv, iv
			}
			next = min(next, a.carryOut(ctx, orders))
		}
		t := time.NewTimer(max(next, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// pollOrders asks the edge for this cache's orders, reporting those done.
func (a *Agent) pollOrders(ctx context.Context) ([]wire.Order, time.Duration, error) {
	sess, _, err := a.session(ctx)
	if err != nil {
		a.orderMu.Lock()
		a.orders.PollErrors++
		a.orderMu.Unlock()
		return nil, 0, err
	}
	a.orderMu.Lock()
	done := slices.Clone(a.orders.Done)
	a.orderMu.Unlock()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	resp, err := a.edge.Orders(pctx, wire.OrdersRequest{PeerID: sess.peerID, Token: sess.token, Done: done})
	a.orderMu.Lock()
	defer a.orderMu.Unlock()
	a.orders.Polls++
	if err != nil {
		a.orders.PollErrors++
		if wire.StatusCode(err) == http.StatusUnauthorized {
			a.renewSession(sess.peerID)
		}
		return nil, 0, err
	}
	// Forget what the edge no longer lists, so the report stays bounded.
	live := make(map[string]bool, len(resp.Orders))
	for _, o := range resp.Orders {
		live[o.ID] = true
	}
	a.orders.Done = slices.DeleteFunc(a.orders.Done, func(id string) bool { return !live[id] })
	return resp.Orders, time.Duration(resp.PollIntervalMs) * time.Millisecond, nil
}

// carryOut fetches what the open orders lack and returns how soon to look
// again: at the next window's opening if that comes before the next poll.
func (a *Agent) carryOut(ctx context.Context, orders []wire.Order) time.Duration {
	next := time.Duration(1<<63 - 1)
	for _, o := range orders {
		a.orderMu.Lock()
		done := slices.Contains(a.orders.Done, o.ID)
		a.orderMu.Unlock()
		if done {
			continue
		}
		var w *wire.Window
		if o.Window != "" {
			pw, err := wire.ParseWindow(o.Window)
			if err != nil {
				a.log.Warn("pre-positioning order with a bad window; skipped", "order", o.ID, "err", err)
				continue
			}
			w = &pw
		}
		now := a.clock()
		if w != nil && !w.Contains(now) {
			next = min(next, w.Next(now).Sub(now))
			continue
		}
		complete := true
		for _, u := range o.URLs {
			ok, err := a.prefetchOne(ctx, u, w)
			if ctx.Err() != nil {
				return next
			}
			if err != nil {
				a.log.Warn("pre-positioning", "order", o.ID, "url", u, "err", err)
			}
			if !ok {
				complete = false
				if errors.Is(err, errWindowClosed) {
					break
				}
			}
		}
		if complete {
			a.orderMu.Lock()
			if !slices.Contains(a.orders.Done, o.ID) && len(a.orders.Done) < wire.MaxOrders {
				a.orders.Done = append(a.orders.Done, o.ID)
			}
			a.orderMu.Unlock()
			a.log.Info("pre-positioning order carried out", "order", o.ID, "objects", len(o.URLs))
			next = 0 // report it at once
		}
	}
	return next
}

// prefetchOne downloads objectURL, inside w if it is not nil, and reports
// whether the object is now held whole.
func (a *Agent) prefetchOne(ctx context.Context, objectURL string, w *wire.Window) (bool, error) {
	d, err := a.Download(ctx, objectURL)
	if err != nil {
		return false, err
	}
	wctx := ctx
	if w != nil {
		now := a.clock()
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, w.Until(now).Sub(now))
		defer cancel()
	}
	err = d.Wait(wctx)
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		d.cancel() // the chunks held stay in the store for the next window
		a.orderMu.Lock()
		a.orders.Stopped++
		a.orderMu.Unlock()
		a.log.Info("pre-positioning paused: the window closed", "url", objectURL, "held", d.Stats().UsefulBytes)
		return false, errWindowClosed
	}
	return false, err
}

// OrderStats returns the managed cache's pre-positioning counters.
func (a *Agent) OrderStats() OrderStats {
	a.orderMu.Lock()
	defer a.orderMu.Unlock()
	s := a.orders
	s.Done = slices.Clone(s.Done)
	return s
}
