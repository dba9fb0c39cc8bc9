// Command pushgateway is an example receiver for CHAT_PUSH_URL: it verifies
// each request's Chat-Signature, dedupes notifications by (user, conv, seq)
// (delivery is at least once) and logs what a real gateway would send to
// APNs or FCM: an alert with the sender and a preview, and the badge.
//
//	CHAT_WEBHOOK_SECRET=... go run ./examples/pushgateway -addr 127.0.0.1:9090
//	CHAT_PUSH_URL=http://127.0.0.1:9090/push CHAT_WEBHOOK_SECRET=... go run ./cmd/chatd
//
// It answers 2xx once it has taken a batch; any other answer makes the
// chat server retry the same batch.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

type notification struct {
	User   string          `json:"user"`
	Conv   string          `json:"conv"`
	Seq    int64           `json:"seq"`
	From   string          `json:"from"`
	Body   json.RawMessage `json:"body"`
	Unread int64           `json:"unread"`
}

// seen remembers recent notifications, to drop redeliveries.
type seen struct {
	mu   sync.Mutex
	keys map[string]time.Time
}

func (s *seen) first(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if len(s.keys) > 100_000 { // bounded: forget what is old
		for k, t := range s.keys {
			if now.Sub(t) > time.Hour {
				delete(s.keys, k)
			}
		}
	}
	if _, ok := s.keys[key]; ok {
		return false
	}
	s.keys[key] = now
	return true
}

func verify(secret, body []byte, sig string) bool {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(want), []byte(sig))
}

// preview is the alert text: the body's "text" if it has one.
func preview(body json.RawMessage) string {
	var b struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(body, &b) == nil && b.Text != "" {
		if r := []rune(b.Text); len(r) > 100 {
			return string(r[:100]) + "…"
		}
		return b.Text
	}
	return "New message"
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "listen address")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	secret := []byte(os.Getenv("CHAT_WEBHOOK_SECRET"))
	if len(secret) == 0 {
		log.Error("CHAT_WEBHOOK_SECRET is required")
		os.Exit(2)
	}
	dedupe := &seen{keys: map[string]time.Time{}}
	http.HandleFunc("POST /push", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 32<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if !verify(secret, body, r.Header.Get("Chat-Signature")) {
			log.Warn("bad signature; refused")
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var req struct {
			Notifications []notification `json:"notifications"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			// Retrying will not fix it: take it and say so.
			log.Error("undecodable batch; dropped", "err", err)
			w.WriteHeader(http.StatusOK)
			return
		}
		for _, n := range req.Notifications {
			if !dedupe.first(n.User + "/" + n.Conv + "/" + strconv.FormatInt(n.Seq, 10)) {
				continue
			}
			// A real gateway looks up the user's device tokens here and
			// sends one request per device: APNs with
			// {"aps":{"alert":{"title":from,"body":preview},"badge":unread,"thread-id":conv}},
			// FCM with {"message":{"token":…,"notification":{"title","body"},"apns":…,"android":{"notification":{"notification_count":unread}}}}.
			log.Info("would push", "user", n.User, "title", n.From, "body", preview(n.Body), "badge", n.Unread, "thread", n.Conv, "seq", n.Seq)
		}
		w.WriteHeader(http.StatusOK)
	})
	log.Info("push gateway example listening", "addr", *addr)
	srv := &http.Server{Addr: *addr, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}
