package webui

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServesTheClient(t *testing.T) {
	h := New()
	for path, ctype := range map[string]string{
		"/": "text/html", "/index.html": "text/html", "/app.js": "text/javascript",
		"/conn.js": "text/javascript", "/style.css": "text/css", "/favicon.svg": "image/svg+xml",
	} {
		res := get(t, h, http.MethodGet, path, nil)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), ctype)
		}
		if res.Header.Get("ETag") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", path, res.Header)
		}
	}
	res := get(t, h, http.MethodGet, "/", nil)
	if b := body(t, res); !strings.Contains(b, `<script type="module" src="app.js">`) {
		t.Errorf("GET / is not the client's page: %.200s", b)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("GET /: CSP %q", csp)
	}
	for _, path := range []string{"/web.go", "/nope.js", "/v2/", "/app.js/x"} {
		if res := get(t, h, http.MethodGet, path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
	if res := get(t, h, http.MethodPost, "/", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", res.StatusCode)
	}
	if res := get(t, h, http.MethodHead, "/app.js", nil); res.StatusCode != http.StatusOK || body(t, res) != "" {
		t.Errorf("HEAD /app.js: %d", res.StatusCode)
	}
}

func TestRevalidationAndGzip(t *testing.T) {
	h := New()
	first := get(t, h, http.MethodGet, "/app.js", nil)
	plain := body(t, first)
	etag := first.Header.Get("ETag")
	if res := get(t, h, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag}); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", res.StatusCode)
	}
	if res := get(t, h, http.MethodGet, "/app.js", map[string]string{"If-None-Match": `"other"`}); res.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match with another ETag: %d, want 200", res.StatusCode)
	}
	res := get(t, h, http.MethodGet, "/app.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Accept-Encoding gzip: no gzip (%v)", res.Header)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if string(unzipped) != plain {
		t.Errorf("the gzip body differs from the file")
	}
	if res := get(t, h, http.MethodGet, "/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); res.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got gzip")
	}
}

// Every module a module imports is embedded: a missing file would only show
// in a browser.
func TestImportsAreEmbedded(t *testing.T) {
	h := New()
	re := regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"]\./([^'"]+)['"]`)
	for name, f := range h.files {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(string(f.body), -1) {
			if h.files["/"+m[1]] == nil {
				t.Errorf("%s imports %s, which is not embedded", name, m[1])
			}
		}
	}
	idx := string(h.files["/index.html"].body)
	for _, m := range regexp.MustCompile(`(?:href|src)="([^"]+)"`).FindAllStringSubmatch(idx, -1) {
		if h.files["/"+m[1]] == nil {
			t.Errorf("index.html refers to %s, which is not embedded", m[1])
		}
	}
}

// Mounted beside the api's routes, "/" takes only what they leave.
func TestMountBesideAPI(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	New().Mount(mux) // panics on a conflicting pattern
	for path, want := range map[string]int{"/": 200, "/app.js": 200, "/v1/me": http.StatusTeapot, "/healthz": 204} {
		if res := get(t, mux, http.MethodGet, path, nil); res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
	}
}
