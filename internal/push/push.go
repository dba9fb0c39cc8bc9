// Package push delivers the app backend's ephemeral pushes (POST
// /v1/server/push): a {"type":"push","id","data"} frame to every live
// connection of some users, of a conversation's members or of everyone. A
// push is not stored and not sequenced: delivery is at most once, and the
// same id within timeline.PushIDsWindow is not delivered again, across api
// replicas (timeline.PushIDs).
//
// No push costs one publish per connection: pushes to users and to a
// conversation go once to each edge that holds one of the recipients, a
// push to everyone once to the subject every edge listens on; each edge
// fans out to its own connections.
package push

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqchat/seqchat/events"
	"github.com/seqchat/seqchat/timeline"
)

// Request is one push: to Users, to Conv's members, or to All.
type Request struct {
	ID    string
	Data  json.RawMessage
	Users []string
	Conv  string
	All   bool
}

// Frames sends ready-made frames to users' connections (the fanout
// projector's Frames).
type Frames interface {
	Send(ctx context.Context, users []string, frame []byte, origin string) error
}

// Members reads a conversation's current members (postgres.Members).
type Members interface {
	Load(ctx context.Context, conv string) (*events.Conv, error)
}

// Service delivers pushes.
type Service struct {
	nc      *nats.Conn
	ids     *timeline.PushIDs
	frames  Frames
	members Members
}

// New opens (creating it if needed) the bucket of recent push ids.
func New(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, replicas int, frames Frames, members Members) (*Service, error) {
	ids, err := timeline.OpenPushIDs(ctx, js, replicas)
	if err != nil {
		return nil, err
	}
	return &Service{nc: nc, ids: ids, frames: frames, members: members}, nil
}

type frame struct {
	Type string          `json:"type"`
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
}

// Push delivers r. It reports false when r.ID was pushed within the dedupe
// window (nothing is delivered again). A conversation that does not exist
// is not_found.
func (s *Service) Push(ctx context.Context, r Request) (bool, error) {
	users := r.Users
	if r.Conv != "" {
		cv, err := s.members.Load(ctx, r.Conv)
		if err != nil {
			return false, err
		}
		users = make([]string, 0, len(cv.Members))
		for u := range cv.Members {
			users = append(users, u)
		}
	}
	fresh, err := s.ids.Claim(ctx, r.ID)
	if err != nil {
		return false, events.WrapError(events.CodeUnavailable, err, "push dedupe unavailable, try again")
	}
	if !fresh {
		return false, nil
	}
	b, _ := json.Marshal(frame{Type: "push", ID: r.ID, Data: r.Data})
	if r.All {
		err = sendAll(s.nc, b)
	} else {
		err = s.frames.Send(ctx, users, b, "")
	}
	if err != nil {
		// Nothing (or not everything) went out: let a retry with the same id
		// deliver it.
		_ = s.ids.Forget(context.WithoutCancel(ctx), r.ID)
		return false, events.WrapError(events.CodeUnavailable, err, "push not delivered, try again")
	}
	return true, nil
}

// sendAll delivers frame to every live connection on every edge, at most
// once.
func sendAll(nc *nats.Conn, frame []byte) error {
	if err := nc.Publish(timeline.AllSubject, frame); err != nil {
		return fmt.Errorf("deliver frame to every edge: %w", err)
	}
	return nil
}
