// Command floor serves one in-memory body to every request, through
// net/http or through a bare keep-alive loop, to measure what the HTTP
// layer alone costs on this machine (docs/BENCHMARKS.md, "Edge cache"):
//
//	go build -o /tmp/floor ./bench/edgecache/floor
//	GOMAXPROCS=1 chrt -r 10 taskset -c 0 /tmp/floor -mode nethttp &
//	chrt -r 10 taskset -c 1 wrk -t1 -c64 -d5s http://127.0.0.1:18999/x
//
// The bare loop reads request heads up to their blank line and answers
// each with the same bytes: no parsing, no routing, the floor of any Go
// HTTP/1.1 server.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
)

func main() {
	mode := flag.String("mode", "nethttp", "nethttp or raw")
	addr := flag.String("listen", "127.0.0.1:18999", "address to listen on")
	size := flag.Int("size", 1024, "body bytes")
	flag.Parse()
	body := bytes.Repeat([]byte("x"), *size)
	switch *mode {
	case "nethttp":
		log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"application/octet-stream"}
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			h["Etag"] = []string{`"floor"`}
			w.Write(body)
		})))
	case "raw":
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			log.Fatal(err)
		}
		resp := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nEtag: \"floor\"\r\n\r\n", len(body))
		resp = append(resp, body...)
		for {
			c, err := ln.Accept()
			if err != nil {
				log.Fatal(err)
			}
			go serveRaw(c, resp)
		}
	default:
		log.Fatalf("-mode %q: want nethttp or raw", *mode)
	}
}

func serveRaw(c net.Conn, resp []byte) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	for {
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}
