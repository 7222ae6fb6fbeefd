package wire

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

func TestChunkPathRoundTrip(t *testing.T) {
	root := core.HashBytes([]byte("x"))
	r, i, err := ParseChunkPath(ChunkPath(root, 42))
	if err != nil || r != root || i != 42 {
		t.Fatalf("got %v %d %v", r, i, err)
	}
	for _, bad := range []string{"/swarm/v1/chunk/", "/swarm/v1/chunk/abc/1", "/x/" + root.String() + "/1",
		PathChunk + root.String() + "/-1", PathChunk + root.String() + "/1/2", PathChunk + root.String() + "/99999999999999999999",
		PathChunk + root.String()} {
		if _, _, err := ParseChunkPath(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseChunkPath(f *testing.F) {
	f.Add(ChunkPath(core.HashBytes([]byte("x")), 3))
	f.Add("/swarm/v1/chunk/zz/1")
	f.Fuzz(func(t *testing.T, p string) {
		root, i, err := ParseChunkPath(p)
		if err != nil {
			return
		}
		if i < 0 || ChunkPath(root, i) == "" {
			t.Fatal("bad parse")
		}
	})
}

// TestBattery19_WrongLengthChunkRejectedBounded: a source that sends more or
// fewer bytes than the chunk, with or without an honest Content-Length, is
// refused, and the client never buffers more than the chunk size + 1 byte.
func TestBattery19_WrongLengthChunkRejectedBounded(t *testing.T) {
	const size = 64 << 10
	huge := make([]byte, 1<<20)
	cases := map[string]struct {
		handler func(w http.ResponseWriter)
		want    error
	}{
		"oversized with Content-Length": {func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(huge)))
			w.Write(huge)
		}, ErrChunkTooLarge},
		"oversized chunked (no length)": {func(w http.ResponseWriter) {
			for range 64 {
				w.Write(huge)
				w.(http.Flusher).Flush()
			}
		}, ErrChunkTooLarge},
		"short with Content-Length": {func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			w.Write(huge[:100])
		}, ErrChunkShort},
		"short chunked": {func(w http.ResponseWriter) {
			w.Write(huge[:100])
			w.(http.Flusher).Flush()
		}, ErrChunkShort},
		"closes mid-chunk": {func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(huge[:size/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, nil},
		"missing": {func(w http.ResponseWriter) { http.NotFound(w, nil) }, ErrChunkNotFound},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.handler(w) }))
			defer ts.Close()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			buf, err := FetchChunk(context.Background(), ts.Client(), ts.URL, core.Hash{}, 0, size, "", nil)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("accepted %d bytes", len(buf))
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			// The client may allocate its size+1 buffer and HTTP machinery,
			// never the 64 MiB the server tried to send.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*size+256<<10 {
				t.Fatalf("allocated %d bytes for a %d-byte chunk", grew, size)
			}
		})
	}
}

func TestFetchChunkExact(t *testing.T) {
	body := make([]byte, 1000)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderPeerID) != "p1" {
			t.Errorf("peer header %q", r.Header.Get(HeaderPeerID))
		}
		w.Write(body)
	}))
	defer ts.Close()
	got, err := FetchChunk(context.Background(), ts.Client(), ts.URL+"/", core.Hash{}, 1, len(body), "p1", make([]byte, 10))
	if err != nil || len(got) != len(body) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}
