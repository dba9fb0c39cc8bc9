package timeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PushIDsBucket holds the ids of recent server pushes.
const PushIDsBucket = "PUSH_IDS"

// PushIDsWindow is how long a push id is remembered.
const PushIDsWindow = 2 * time.Minute

// PushIDs remembers the ids of recent server pushes across api replicas, so
// that the same id is delivered once: a JetStream KV bucket in memory whose
// entries expire after PushIDsWindow.
type PushIDs struct{ kv jetstream.KeyValue }

// OpenPushIDs opens the bucket of recent push ids, creating it if needed
// with replicas copies.
func OpenPushIDs(ctx context.Context, js jetstream.JetStream, replicas int) (*PushIDs, error) {
	kv, err := js.KeyValue(ctx, PushIDsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: PushIDsBucket, Description: "ids of recent server pushes, for dedupe",
			TTL: PushIDsWindow, Storage: jetstream.MemoryStorage, Replicas: max(replicas, 1),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", PushIDsBucket, err)
	}
	return &PushIDs{kv: kv}, nil
}

// Claim records id; it reports false when id was claimed within the
// window.
func (p *PushIDs) Claim(ctx context.Context, id string) (bool, error) {
	if _, err := p.kv.Create(ctx, id, nil); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Forget drops a claim, so that a retry with the same id may claim it
// again.
func (p *PushIDs) Forget(ctx context.Context, id string) error {
	return p.kv.Delete(ctx, id)
}
