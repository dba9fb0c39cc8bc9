// Package webui serves the embedded web client (web/) at "/": index.html for
// "/", the modules, style sheet and icon by name. Every file carries a strong
// ETag, so a browser revalidates cheaply (304) and a new binary's files are
// never mixed with stale ones; gzip is precomputed for clients that take it.
package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/seqchat/seqchat/web"
)

// file is one embedded file, ready to serve.
type file struct {
	body, gz []byte
	ctype    string
	etag     string
}

// Handler serves the client. Paths that are not a file of the client answer
// 404; only GET and HEAD are allowed.
type Handler struct {
	files map[string]*file
}

// New loads the embedded client.
func New() *Handler { return newHandler(web.FS) }

func newHandler(fsys fs.FS) *Handler {
	h := &Handler{files: map[string]*file{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		f := &file{body: b, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		f.ctype = mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) { // the system's mime table may lack or differ on these
		case ".js":
			f.ctype = "text/javascript; charset=utf-8"
		case ".html":
			f.ctype = "text/html; charset=utf-8"
		case ".css":
			f.ctype = "text/css; charset=utf-8"
		case ".svg":
			f.ctype = "image/svg+xml"
		}
		if len(b) > 512 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(b)
			_ = zw.Close()
			if buf.Len() < len(b) {
				f.gz = buf.Bytes()
			}
		}
		h.files["/"+p] = f
		return nil
	})
	if err != nil {
		panic("webui: read embedded client: " + err.Error()) // a build defect, not a runtime condition
	}
	h.files["/"] = h.files["/index.html"]
	return h
}

// Mount serves the client at "/" on mux. It takes the catch-all pattern "/",
// so every more specific route (the api's /v1/, /v1/ws, /healthz, …) wins.
func (h *Handler) Mount(mux *http.ServeMux) { mux.Handle("/", h) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := h.files[r.URL.Path]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	hd.Set("Cache-Control", "no-cache") // revalidate: file names carry no version
	hd.Set("Vary", "Accept-Encoding")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if f == h.files["/index.html"] {
		hd.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("X-Frame-Options", "DENY")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatch(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		if _, q, ok := strings.Cut(strings.ReplaceAll(params, " ", ""), "q="); ok {
			v, err := strconv.ParseFloat(q, 64)
			return err == nil && v > 0
		}
		return true
	}
	return false
}
