// Package hooks carries TIMELINE out of the system to the app's own
// backend: webhooks (every event, to every CHAT_WEBHOOK_URLS entry) and
// offline push (a notification for each member a message finds offline, to
// CHAT_PUSH_URL). Both are projections of TIMELINE with a durable cursor: a
// durable JetStream consumer per URL, acked only once the receiver answered
// 2xx, so every event reaches every URL at least once, in seq order per
// conversation, through restarts of every role and a receiver that is down
// for a while. Each URL has its own consumer, lease and goroutine: one slow
// or failing receiver holds up nothing else.
package hooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// SignatureHeader carries the body's signature: "sha256=<lowercase hex
// HMAC-SHA256 of the raw body, keyed with the secret>".
const SignatureHeader = "Chat-Signature"

// Sign returns the SignatureHeader value of body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature (in constant time).
func Verify(secret, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}

// Timing of deliveries.
const (
	// AttemptTimeout is how long a receiver has to answer one POST.
	AttemptTimeout = 10 * time.Second
	// MaxBackoff is the longest wait between two attempts.
	MaxBackoff = time.Minute
	minBackoff = 100 * time.Millisecond
)

// Metrics are the hooks' metrics, labelled by hook ("webhook" or "push")
// and URL (without its query, user or fragment: those may hold secrets).
type Metrics struct {
	pending     *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	failures    *prometheus.CounterVec
	delivered   *prometheus.CounterVec
	batchTime   *prometheus.HistogramVec
}

// NewMetrics registers the hooks' metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	l := []string{"hook", "url"}
	return &Metrics{
		pending:     f.NewGaugeVec(prometheus.GaugeOpts{Name: "chat_hook_pending_events", Help: "TIMELINE events not yet acknowledged by the receiver (its consumer's pending and unacked messages)."}, l),
		lastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{Name: "chat_hook_last_success_timestamp_seconds", Help: "When the receiver last answered 2xx (Unix time)."}, l),
		failures:    f.NewCounterVec(prometheus.CounterOpts{Name: "chat_hook_failures_total", Help: "Failed POSTs, by the receiver's status (or error: timeout, connection)."}, append(l, "status")),
		delivered:   f.NewCounterVec(prometheus.CounterOpts{Name: "chat_hook_delivered_total", Help: "Events (webhook) or notifications (push) the receiver acknowledged."}, l),
		batchTime:   f.NewHistogramVec(prometheus.HistogramOpts{Name: "chat_hook_post_seconds", Help: "Time of one successful POST.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, l),
	}
}

// Redact is a URL as logs and metrics show it: scheme, host and path.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "invalid-url"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// target is one receiver.
type target struct {
	hook, url, label string
}

func newTarget(hook, raw string) target { return target{hook: hook, url: raw, label: Redact(raw)} }

// poster POSTs signed bodies until the receiver takes them.
type poster struct {
	client *http.Client
	secret []byte
	m      *Metrics
	log    *slog.Logger
}

func newPoster(secret string, m *Metrics, log *slog.Logger) *poster {
	return &poster{
		client: &http.Client{Timeout: AttemptTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		secret: []byte(secret), m: m, log: log,
	}
}

// deliver POSTs body to t until a 2xx answer, with a capped exponential
// backoff between attempts, calling keep before each retry (to keep the
// batch's messages from being redelivered meanwhile). It returns only on
// success or when ctx ends.
func (p *poster) deliver(ctx context.Context, t target, body []byte, count int, keep func()) error {
	sig := Sign(p.secret, body)
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		status, err := p.post(ctx, t.url, body, sig)
		if err == nil && status >= 200 && status < 300 {
			p.m.batchTime.WithLabelValues(t.hook, t.label).Observe(time.Since(start).Seconds())
			p.m.lastSuccess.WithLabelValues(t.hook, t.label).SetToCurrentTime()
			p.m.delivered.WithLabelValues(t.hook, t.label).Add(float64(count))
			if attempt > 1 {
				p.log.Info("receiver took the batch", "url", t.label, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		label := strconv.Itoa(status)
		if err != nil {
			label = "error"
			if ue, ok := err.(*url.Error); ok && ue.Timeout() {
				label = "timeout"
			}
		}
		p.m.failures.WithLabelValues(t.hook, t.label, label).Inc()
		if attempt == 1 || attempt%10 == 0 {
			p.log.Warn("receiver refused a batch; retrying", "url", t.label, "status", label, "err", err, "attempt", attempt, "backoff", backoff)
		}
		keep()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

func (p *poster) post(ctx context.Context, u string, body []byte, sig string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, sig)
	req.Header.Set("User-Agent", "seqchat-hooks/1")
	res, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return res.StatusCode, nil
}
