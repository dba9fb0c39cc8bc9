package api_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seqchat/seqchat/docs"
	"github.com/seqchat/seqchat/internal/api"
	"github.com/seqchat/seqchat/internal/serve"
)

// routes records the patterns mounted on it and passes them on to a real
// mux, so that the list is the one the api process serves.
type routes struct {
	mux      *http.ServeMux
	patterns []string
}

func (r *routes) Handle(p string, h http.Handler) {
	r.patterns = append(r.patterns, p)
	r.mux.Handle(p, h)
}
func (r *routes) HandleFunc(p string, h func(http.ResponseWriter, *http.Request)) {
	r.patterns = append(r.patterns, p)
	r.mux.HandleFunc(p, h)
}

// served mounts what the api role serves (its own routes and the probes
// every process has) and returns "METHOD /path" for each. Patterns without a
// method are catch-alls (the /v1/ 404, the web client), not calls.
func served(t *testing.T) (*http.ServeMux, []string) {
	t.Helper()
	r := &routes{mux: http.NewServeMux()}
	serve.Mount(r, prometheus.NewRegistry(), nil)
	api.New(api.Stores{}, nil, nil, nil, api.Options{Log: slog.New(slog.DiscardHandler)}).Mount(r)
	var calls []string
	for _, p := range r.patterns {
		if method, path, ok := strings.Cut(p, " "); ok {
			calls = append(calls, method+" "+path)
		}
	}
	slices.Sort(calls)
	return r.mux, calls
}

var (
	pathLine   = regexp.MustCompile(`^  (/[^:\s]*):\s*$`)
	methodLine = regexp.MustCompile(`^    ([a-z]+):`)
	pathKeys   = []string{"parameters", "summary", "description", "servers"}
	methods    = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}
)

// documented lists "METHOD /path" for every operation under the document's
// paths. The module has no YAML library, so it reads the layout openapi.yaml
// keeps (paths at two spaces, operations at four) and refuses anything else
// there rather than skip it silently.
func documented(doc []byte) ([]string, error) {
	var out []string
	inPaths, path := false, ""
	for i, line := range strings.Split(string(doc), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") { // a top-level key
			inPaths = line == "paths:"
			continue
		}
		if !inPaths {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		switch {
		case indent == 1 || indent == 3:
			return nil, fmt.Errorf("line %d: odd indentation under paths: %q", i+1, line)
		case indent == 2:
			m := pathLine.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: want a path under paths: %q", i+1, line)
			}
			path = m[1]
		case indent == 4:
			m := methodLine.FindStringSubmatch(line)
			switch {
			case m == nil:
				return nil, fmt.Errorf("line %d: want an operation of %s: %q", i+1, path, line)
			case slices.Contains(methods, m[1]):
				out = append(out, strings.ToUpper(m[1])+" "+path)
			case !slices.Contains(pathKeys, m[1]):
				return nil, fmt.Errorf("line %d: %q is not an operation of %s", i+1, m[1], path)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no operations under paths:")
	}
	slices.Sort(out)
	return out, nil
}

// TestOpenAPIDescribesEveryRoute: docs/openapi.yaml documents every call the
// api serves, and the api serves every call it documents.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc, err := documented(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	_, calls := served(t)
	for _, c := range calls {
		if !slices.Contains(doc, c) {
			t.Errorf("%s is served but not in docs/openapi.yaml", c)
		}
	}
	for _, d := range doc {
		if !slices.Contains(calls, d) {
			t.Errorf("%s is in docs/openapi.yaml but not served", d)
		}
	}
}

func TestOpenAPIChecker(t *testing.T) {
	good := "openapi: 3.1.0\npaths:\n  /v1/x/{id}:\n    parameters:\n      - name: id\n    get:\n      summary: x\n    post:\n      summary: y\ncomponents:\n  schemas:\n    get:\n"
	got, err := documented([]byte(good))
	if err != nil || !slices.Equal(got, []string{"GET /v1/x/{id}", "POST /v1/x/{id}"}) {
		t.Errorf("documented = %v, %v", got, err)
	}
	for _, bad := range []string{
		"paths:\n  /v1/x:\n    gett:\n",             // a typo in a method
		"paths:\n  v1/x:\n    get:\n",               // a path without its slash
		"paths:\n   /v1/x:\n    get:\n",             // odd indentation
		"paths:\ncomponents:\n  /v1/x:\n    get:\n", // nothing under paths
	} {
		if _, err := documented([]byte(bad)); err == nil {
			t.Errorf("%q passed", bad)
		}
	}
}

// TestServesOpenAPI: GET /v1/openapi.yaml answers the document, without a token.
func TestServesOpenAPI(t *testing.T) {
	mux, _ := served(t)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.yaml", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != http.StatusOK || !bytes.Equal(body, docs.OpenAPI) {
		t.Fatalf("GET /v1/openapi.yaml: %d, %d bytes (want %d)", rec.Code, len(body), len(docs.OpenAPI))
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.HasPrefix(docs.OpenAPI, []byte("openapi: 3.1")) {
		t.Error("docs/openapi.yaml is not OpenAPI 3.1")
	}
}
