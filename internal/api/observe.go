package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqchat/seqchat/internal/activity"
)

// observer counts every REST request by its route pattern (never the raw
// path: ids would make a series per conversation) and, when asked, logs it.
type observer struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	rejected *prometheus.CounterVec
	log      *slog.Logger // nil: no access log
}

func newObserver(opt Options) *observer {
	reg := opt.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	o := &observer{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_http_requests_total", Help: "REST requests answered, by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chat_http_request_duration_seconds", Help: "Time to answer a REST request, by method and route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms … 16 s
		}, []string{"method", "route"}),
		rejected: activity.Rejections(reg),
	}
	if opt.AccessLog && opt.Log != nil {
		o.log = opt.Log.With("log", "access")
	}
	return o
}

// route is the path part of the pattern the mux matched ("POST
// /v1/conversations/{id}/messages" → "/v1/conversations/{id}/messages").
func route(r *http.Request) string {
	p := r.Pattern
	if _, path, ok := strings.Cut(p, " "); ok {
		p = path
	}
	if p == "" {
		p = "unmatched"
	}
	return p
}

// method is r's method when it is one of HTTP's, else "other": a client
// picks the method, and each new one would be a new series.
func method(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return r.Method
	}
	return "other"
}

// observe wraps a route's handler with the request metrics and the access
// log. The log line holds no header, query or body: the Authorization
// header, tokens and passwords never reach it.
func (a *API) observe(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		took := time.Since(start)
		rt, m := route(r), method(r)
		a.obs.requests.WithLabelValues(m, rt, strconv.Itoa(status)).Inc()
		a.obs.duration.WithLabelValues(m, rt).Observe(took.Seconds())
		if a.obs.log != nil {
			a.obs.log.Info("request", "method", m, "route", rt, "status", status,
				"duration_ms", float64(took.Microseconds())/1000, "bytes", sw.bytes)
		}
	}
}

// statusWriter remembers the status and counts the body bytes written.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
