package receipts

import (
	"context"
	"encoding/json"

	"github.com/seqchat/seqchat/events"
)

// Members answers who is in a conversation (the membership cache: a direct
// conversation's two members never change, so a cached answer stays right).
type Members interface {
	Get(ctx context.Context, conv string) (*events.Conv, error)
}

// Sender delivers a ready-made frame to users' connections but origin.
type Sender interface {
	Send(ctx context.Context, users []string, frame []byte, origin string) error
}

type frame struct {
	Type string `json:"type"`
	Receipt
}

// Deliver returns the Notify that sends a receipt frame to the reader's
// other connections and, in a direct conversation, to the other member's
// connections too (docs/protocol.md). In a group only the reader's devices hear
// of it: the others can ask GET /v1/conversations/{id}/receipts.
func Deliver(members Members, send Sender) Notify {
	return func(ctx context.Context, r Receipt, origin string) error {
		to := []string{r.User}
		cv, err := members.Get(ctx, r.Conv)
		if err != nil {
			// The reader's own devices still hear of it.
			cv = &events.Conv{}
		}
		if events.ConvKind(cv.Kind) == events.ConvDirect {
			for u := range cv.Members {
				if u != r.User {
					to = append(to, u)
				}
			}
		}
		b, _ := json.Marshal(frame{Type: "receipt", Receipt: r})
		return send.Send(ctx, to, b, origin)
	}
}
