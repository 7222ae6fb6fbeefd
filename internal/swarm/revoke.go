package swarm

// Revoked peer identities: an operator's revocations and the tracker's
// bans, in force until they expire or are lifted.

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// Revocation is one revoked peer identity.
type Revocation struct {
	PeerID string
	Reason string
	// At is when it was revoked; Until when the revocation lapses.
	At, Until time.Time
	// Ban marks a ban for bad chunks (Report); otherwise an operator
	// revoked the identity (Revoke).
	Ban bool
}

// revRef is one entry of Tracker.revOrder.
type revRef struct {
	id string
	at time.Time
}

// Revoke revokes r.PeerID: it is taken out of every swarm, never handed
// out, its announces and registrations are refused (ErrRevoked) until
// r.Until. A zero r.At means now and a zero r.Until means At +
// Config.RevocationTTL. Revoking an identity again replaces its entry;
// revoking one that is not registered is allowed (it cannot register).
// It returns the entry as stored.
func (t *Tracker) Revoke(r Revocation) (Revocation, error) {
	now := t.now()
	if r.At.IsZero() {
		r.At = now
	}
	if r.Until.IsZero() {
		r.Until = r.At.Add(t.cfg.RevocationTTL)
	}
	switch {
	case !core.ValidPeerID(r.PeerID):
		return r, fmt.Errorf("%w: revoke: peer id %q: want 1 to %d letters, digits, '-', '_' or '.'", ErrInvalidArgument, truncate(r.PeerID, 80), core.MaxPeerIDLen)
	case len(r.Reason) > MaxReasonLen:
		return r, fmt.Errorf("%w: revoke: reason of %d bytes (max %d)", ErrInvalidArgument, len(r.Reason), MaxReasonLen)
	case !r.Until.After(now):
		return r, fmt.Errorf("%w: revoke %s: lapses at %s, already past", ErrInvalidArgument, r.PeerID, r.Until.UTC().Format(time.RFC3339))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.revokeLocked(r, now)
}

func (t *Tracker) revokeLocked(r Revocation, now time.Time) (Revocation, error) {
	old, again := t.revoked[r.PeerID]
	if !again && len(t.revoked) >= t.cfg.MaxRevoked {
		t.expireRevocationsLocked(now)
		if len(t.revoked) >= t.cfg.MaxRevoked {
			return r, fmt.Errorf("revoke %s: %w (%d in force; raise max_revoked)", r.PeerID, ErrTooManyRevoked, len(t.revoked))
		}
	}
	stored := r
	t.revoked[r.PeerID] = &stored
	// Keep revOrder sorted by At: appending is the rule, an older entry
	// (one restored at start) is put in its place. A replaced entry's old
	// reference goes stale, unless it has the same time and so still
	// stands for the entry.
	if !again || !old.At.Equal(r.At) {
		ref := revRef{id: r.PeerID, at: r.At}
		if n := len(t.revOrder); n == 0 || !r.At.Before(t.revOrder[n-1].at) {
			t.revOrder = append(t.revOrder, ref)
		} else {
			i := sort.Search(n, func(i int) bool { return t.revOrder[i].at.After(r.At) })
			t.revOrder = slices.Insert(t.revOrder, i, ref)
		}
		t.compactRevOrderLocked()
	}
	if p := t.peers[r.PeerID]; p != nil {
		if !r.Ban {
			p.revoked = true
		}
		for root := range p.objects {
			t.removeMemberLocked(r.PeerID, root)
		}
	}
	if !r.Ban {
		t.log.Warn("peer revoked", "peer", r.PeerID, "reason", r.Reason, "until", r.Until)
	}
	return stored, nil
}

// Unrevoke lifts peerID's revocation or ban; it reports whether there was
// one. Peers that were told of the revocation keep refusing the identity
// until the entry they got lapses.
func (t *Tracker) Unrevoke(peerID string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, had := t.revoked[peerID]
	delete(t.revoked, peerID)
	if p := t.peers[peerID]; p != nil {
		had = had || p.banned || p.revoked
		if p.banned && p.addr != "" {
			delete(t.bannedAddrs, p.addr)
		}
		p.banned, p.revoked, p.reporters = false, false, nil
		delete(t.banned, peerID)
	}
	t.compactRevOrderLocked()
	if had {
		t.log.Warn("peer revocation lifted", "peer", peerID)
	}
	return had
}

// Revocations returns every revocation in force, newest first.
func (t *Tracker) Revocations() []Revocation {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Revocation, 0, len(t.revoked))
	for _, r := range t.revoked {
		if now.Before(r.Until) {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.After(out[j].At)
		}
		return out[i].PeerID < out[j].PeerID
	})
	return out
}

// RevokedSince returns up to max revocations in force made at or after
// since, newest first. Its cost grows with what it returns, not with the
// revocations kept.
func (t *Tracker) RevokedSince(since time.Time, max int) []Revocation {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Revocation
	for i := len(t.revOrder) - 1; i >= 0 && len(out) < max; i-- {
		ref := t.revOrder[i]
		if ref.at.Before(since) {
			break
		}
		r := t.revoked[ref.id]
		if r == nil || !r.At.Equal(ref.at) || !now.Before(r.Until) {
			continue // lifted, replaced or lapsed
		}
		out = append(out, *r)
	}
	return out
}

// liveRevocationLocked returns peerID's revocation if it is in force.
func (t *Tracker) liveRevocationLocked(peerID string, now time.Time) *Revocation {
	r := t.revoked[peerID]
	if r == nil || !now.Before(r.Until) {
		return nil
	}
	return r
}

// expireRevocationsLocked drops lapsed revocations (a registered peer's
// operator revocation with it; a ban stays with the registration).
func (t *Tracker) expireRevocationsLocked(now time.Time) {
	for id, r := range t.revoked {
		if now.Before(r.Until) {
			continue
		}
		delete(t.revoked, id)
		if p := t.peers[id]; p != nil && !r.Ban {
			p.revoked = false
		}
	}
	t.compactRevOrderLocked()
}

// compactRevOrderLocked drops stale revOrder entries once they are as many
// as the live ones, so revOrder stays within twice the revocations kept.
func (t *Tracker) compactRevOrderLocked() {
	if len(t.revOrder) <= 2*len(t.revoked)+64 {
		return
	}
	t.revOrder = slices.DeleteFunc(t.revOrder, func(ref revRef) bool {
		r := t.revoked[ref.id]
		return r == nil || !r.At.Equal(ref.at)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
