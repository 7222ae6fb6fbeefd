package peer

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// PathContent prefixes the object paths of the player endpoint:
// GET /content/videos/a.mp4 plays the object "/videos/a.mp4".
const PathContent = "/content"

// PlayerHandler is the local endpoint for players and browsers: GET or HEAD
// /content/<object path> streams the object in order while it downloads
// (starting the download if needed), with Content-Type and Content-Length
// from the manifest and single byte ranges (206, Content-Range, 416);
// GET /status reports the agent's caps and usage (PathStatus).
func (a *Agent) PlayerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathStatus {
			a.serveStatus(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		objectURL, ok := strings.CutPrefix(r.URL.EscapedPath(), PathContent)
		if !ok || !strings.HasPrefix(objectURL, "/") || objectURL == "/" {
			http.NotFound(w, r)
			return
		}
		if r.URL.RawQuery != "" {
			objectURL += "?" + r.URL.RawQuery
		}
		d, err := a.Download(r.Context(), objectURL)
		if err != nil {
			code := http.StatusBadGateway
			if r.Context().Err() != nil {
				return // the client left
			}
			if errors.Is(err, ErrClosed) {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), code)
			return
		}
		m := d.Manifest()
		h := w.Header()
		ct := m.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct) // set, so ServeContent does not sniff (a blocking read)
		if v := m.Validator; strings.HasPrefix(v, `"`) || strings.HasPrefix(v, `W/"`) {
			h.Set("ETag", v)
		} else if t, err := http.ParseTime(v); err == nil {
			h.Set("Last-Modified", t.UTC().Format(http.TimeFormat))
		}
		h.Set("X-Edgeswarm-Root", m.Root.String())
		// ServeContent handles HEAD, a single Range (206/416), conditional
		// requests and Content-Length; the reader blocks per chunk.
		http.ServeContent(w, r, "", time.Time{}, d.NewReader(r.Context()))
	})
}
