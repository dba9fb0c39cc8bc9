package edge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/seqchat/seqchat/internal/testenv"
	"github.com/seqchat/seqchat/internal/wiring"
)

// BenchmarkEdgeSubmit measures a command's whole way through one process
// (every role, embedded JetStream, file storage): 20 WebSockets in 10
// direct conversations each keep window sends outstanding; a send counts
// when its ack (the event is in TIMELINE) is back. The event also goes
// through the three projectors meanwhile, so allocs/op is what the process
// allocates per message, NATS server included.
//
//	go test -run '^$' -bench EdgeSubmit -benchtime 20000x ./internal/edge/
func BenchmarkEdgeSubmit(b *testing.B) {
	for _, window := range []int{1, 16} {
		b.Run(fmt.Sprintf("window%d", window), func(b *testing.B) { benchSubmit(b, 20, window) })
	}
}

func benchSubmit(b *testing.B, conns, window int) {
	cfg := testenv.Config(b)
	cfg.RateLimits = false
	cfg.PasswordCost = 4
	a, err := wiring.Start(context.Background(), cfg, testenv.Logger(b), wiring.API, wiring.Sequencer, wiring.Projector, wiring.Edge)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Stop()
	base := "http://" + a.Addr
	call := func(path, token string, in, out any) {
		body, _ := json.Marshal(in)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			b.Fatalf("POST %s: %v %v", path, err, resp)
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
	}
	type peer struct {
		token, id, conv string
		ws              *websocket.Conn
	}
	peers := make([]*peer, conns)
	for i := range peers {
		name := fmt.Sprintf("bench%d", i)
		call("/v1/users", "", map[string]string{"username": name, "password": "password1"}, nil)
		var s struct {
			Token  string `json:"token"`
			UserID string `json:"user_id"`
		}
		call("/v1/sessions", "", map[string]string{"username": name, "password": "password1"}, &s)
		peers[i] = &peer{token: s.Token, id: s.UserID}
	}
	for i := 0; i+1 < conns; i += 2 {
		var c struct{ ID string }
		call("/v1/conversations", peers[i].token, map[string]any{"kind": "direct", "members": []string{peers[i+1].id}}, &c)
		peers[i].conv, peers[i+1].conv = c.ID, c.ID
	}
	for _, p := range peers {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+a.Addr+"/v1/ws?token="+p.token, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ws.Close()
		p.ws = ws
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"sync","id":"s","cursors":{}}`)); err != nil {
			b.Fatal(err)
		}
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(m, []byte(`"synced"`)) {
				break
			}
		}
	}
	per := (b.N + conns - 1) / conns
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			credit := make(chan struct{}, window)
			for range window {
				credit <- struct{}{}
			}
			done := make(chan struct{})
			go func() { // the reader: every ack gives a credit back
				defer close(done)
				acked := 0
				_ = p.ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
				for acked < per {
					_, m, err := p.ws.ReadMessage()
					if err != nil {
						errs <- err
						return
					}
					if bytes.HasPrefix(m, []byte(`{"type":"ack"`)) || bytes.Contains(m, []byte(`"type":"ack"`)) {
						acked++
						credit <- struct{}{}
					} else if bytes.Contains(m, []byte(`"type":"error"`)) {
						errs <- fmt.Errorf("error frame: %s", m)
						return
					}
				}
			}()
			prefix := `{"type":"send","conv":"` + p.conv + `","body":{"text":"a message of a typical length, some sixty bytes"},"id":"`
			for n := 0; n < per; n++ {
				select {
				case <-credit:
				case <-done:
					return
				}
				f := prefix + strconv.Itoa(i) + "-" + strconv.Itoa(n) + `"}`
				if err := p.ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
					errs <- err
					return
				}
			}
			<-done
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		if err != nil && !strings.Contains(err.Error(), "use of closed") {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(per*conns)/time.Since(start).Seconds(), "events/s")
}
