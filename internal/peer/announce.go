package peer

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// announceLoop posts the download's bitfield to the edge every announce
// interval (and at once when the loop asks: first chunks, completion), and
// hands each response's peers to the loop. It runs until the download
// fails or the agent closes, so a complete download keeps being handed out.
func (d *Download) announceLoop() {
	defer d.a.wg.Done()
	a := d.a
	interval := ms(a.cfg.AnnounceIntervalMs)
	timer := time.NewTimer(0) // the first announce goes out at once
	defer timer.Stop()
	if a.cfg.Mode == ModeStream {
		// Stream mode: the player's first chunk takes the connection the
		// manifest came on; the announce waits until it has (or briefly).
		select {
		case <-d.firstConn:
		case <-time.After(connGateMax):
		case <-d.ctx.Done():
		}
	}
	failures := 0
	for {
		select {
		case <-d.ctx.Done():
			d.leaveIfFailed()
			return
		case <-timer.C:
		case <-d.announceNow:
		}
		next := interval
		sess, _, err := a.session(d.ctx)
		if err == nil {
			var resp wire.AnnounceResponse
			resp, err = d.announce(sess)
			if err == nil {
				a.takeAnnounce(resp)
				failures = 0
				if edgeIv := ms(resp.AnnounceIntervalMs); edgeIv > next {
					next = edgeIv
				}
				select {
				case <-d.done: // nothing left to fetch
				default:
					d.pushHandout(handout{self: sess.peerID, peers: resp.Peers})
				}
			} else {
				failures++
				switch wire.StatusCode(err) {
				case http.StatusUnauthorized:
					// The edge restarted or expired our registration: register again.
					a.renewSession(sess.peerID)
				case http.StatusForbidden:
					// Banned: the edge hands us out no more and will not take us
					// back; keep downloading from the sources we have.
					a.log.Warn("the edge refuses this peer's announces (banned or revoked); continuing without the swarm", "root", d.m.Root.Short(), "err", err)
					return
				}
			}
		} else {
			failures++
			if wire.StatusCode(err) == http.StatusForbidden {
				a.log.Warn("the edge refuses this peer (banned or revoked); continuing without the swarm", "root", d.m.Root.Short(), "err", err)
				return
			}
		}
		if err != nil {
			if d.ctx.Err() != nil {
				d.leaveIfFailed()
				return
			}
			a.log.Debug("announce", "root", d.m.Root.Short(), "err", err)
			next = interval * time.Duration(min(failures, 10))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

func (d *Download) announce(sess session) (wire.AnnounceResponse, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	recv, seq := d.takeReceived()
	resp, err := d.a.edge.Announce(ctx, wire.AnnounceRequest{
		PeerID:      sess.peerID,
		Token:       sess.token,
		Root:        d.m.Root.String(),
		Have:        d.offerBytes(),
		Want:        d.a.cfg.MaxPeers,
		Received:    recv,
		ReceivedSeq: seq,

		RenewTicket:  d.a.wantTicket(),
		RevokedSince: d.a.revokedSince(),
	})
	if err == nil || wire.StatusCode(err) == http.StatusBadRequest {
		d.ackReceived(seq) // counted (or refused for good)
	}
	return resp, err
}

// takeReceived returns the usage report to send and its number: the last
// one again if its answer never came (the edge applies a number once), else
// up to wire.MaxReceived entries of the bytes received from peers and not
// yet reported, largest first.
func (d *Download) takeReceived() ([]wire.Received, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unacked != nil {
		return d.unacked, d.reportSeq
	}
	if len(d.received) == 0 {
		return nil, 0
	}
	out := make([]wire.Received, 0, len(d.received))
	for id, n := range d.received {
		if n > 0 {
			out = append(out, wire.Received{From: id, Bytes: n})
		}
	}
	slices.SortFunc(out, func(a, b wire.Received) int { return cmp.Compare(b.Bytes, a.Bytes) })
	out = out[:min(len(out), wire.MaxReceived)]
	for _, r := range out {
		delete(d.received, r.From)
	}
	d.reportSeq++
	d.unacked = out
	return out, d.reportSeq
}

// ackReceived forgets report seq once the edge has answered it.
func (d *Download) ackReceived(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq != 0 && seq == d.reportSeq {
		d.unacked = nil
	}
}

// leave tells the edge this peer leaves root's swarm, with the usage not
// yet reported (a report whose answer was lost, then the rest).
func (d *Download) leave(ctx context.Context, sess session) error {
	var err error
	for range 2 {
		recv, seq := d.takeReceived()
		_, err = d.a.edge.Announce(ctx, wire.AnnounceRequest{PeerID: sess.peerID, Token: sess.token, Root: d.m.Root.String(), Leaving: true,
			Received: recv, ReceivedSeq: seq})
		if err != nil && wire.StatusCode(err) != http.StatusBadRequest {
			return err
		}
		d.ackReceived(seq)
		d.mu.Lock()
		more := len(d.received) > 0
		d.mu.Unlock()
		if !more {
			return err
		}
	}
	return err
}

// leaveIfFailed tells the edge to stop handing us out for a download that
// failed while the agent lives on (Close announces leaving for the rest).
func (d *Download) leaveIfFailed() {
	sess, ok := d.a.currentSession()
	if !ok || d.a.ctx.Err() != nil || !d.failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d.leave(ctx, sess)
}

// pushHandout gives the loop the latest hand-out, replacing an unread one.
func (d *Download) pushHandout(h handout) {
	for {
		select {
		case d.handouts <- h:
			return
		default:
		}
		select {
		case <-d.handouts:
		default:
		}
	}
}

// requestAnnounce asks the announcer to announce now.
func (d *Download) requestAnnounce() {
	select {
	case d.announceNow <- struct{}{}:
	default:
	}
}
