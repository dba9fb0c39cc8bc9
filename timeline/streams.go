// Package timeline is the sequenced log and every use of JetStream behind
// it: the connection to NATS (conn.go), the streams CMDS (commands waiting
// for a seq) and TIMELINE (every conversation's events, one subject per
// conversation), appending with optimistic concurrency and reading a
// conversation's events by seq (log.go), dedupe of command ids (dedupe.go),
// the command client that submits to CMDS and waits for the sequencer's
// answer (submit.go, admit.go), durable consumers run as loops over batches
// (consume.go), projections fed by the sequencer of their process with
// their own position (fed.go), and leases that give one process at a time
// a piece of work (lease.go).
package timeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and bucket names.
const (
	CmdsStream     = "CMDS"
	TimelineStream = "TIMELINE"
	DedupeBucket   = "DEDUPE"
	LeaseBucket    = "SEQ_LEASES"
	CursorBucket   = "PROJECTIONS"
)

// Settings are the stream settings an operator may change.
type Settings struct {
	Replicas        int
	Storage         string // "file" or "memory"
	MaxAge          time.Duration
	DuplicateWindow time.Duration
	DedupeTTL       time.Duration
	LeaseTTL        time.Duration
	// FastBatches lets TIMELINE take JetStream fast batches, for
	// Log.AppendPipelined. A stream that allows them needs NATS 2.14 on
	// every node.
	FastBatches bool
}

func (s Settings) storage() jetstream.StorageType {
	if s.Storage == "memory" {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Ensure creates the streams and buckets, or updates them in place when their
// settings changed. It never deletes a stream: a setting JetStream cannot
// change in place (storage, say) is an error for the operator to resolve.
//
// On a cluster that is still electing its leaders a request may go
// unanswered or be refused as unavailable; Ensure then tries again, each
// try bounded, until ctx ends. Any other refusal is returned at once.
func Ensure(ctx context.Context, js jetstream.JetStream, s Settings) error {
	for {
		try, cancel := context.WithTimeout(ctx, ensureTry)
		err := ensure(try, js, s)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(ensurePause):
		}
	}
}

// ensureTry bounds one try of Ensure: an answered request takes
// milliseconds, so a try this long means the request went to a leader
// that no longer is one.
const (
	ensureTry   = 5 * time.Second
	ensurePause = 500 * time.Millisecond
)

// transient reports whether err is the cluster not being ready yet (no
// answer, no responders, or a 503 from the JetStream API) rather than a
// refusal of the settings.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	case errors.As(err, &apiErr):
		// 10005: no suitable peers, while the peers are still reporting in.
		return apiErr.Code == 503 || apiErr.ErrorCode == 10005
	}
	return false
}

func ensure(ctx context.Context, js jetstream.JetStream, s Settings) error {
	if s.Replicas < 1 {
		s.Replicas = 1
	}
	if s.DuplicateWindow <= 0 {
		s.DuplicateWindow = 2 * time.Minute
	}
	streams := []jetstream.StreamConfig{{
		Name:        CmdsStream,
		Description: "chat commands waiting for a seq",
		Subjects:    []string{CmdSubjects},
		Retention:   jetstream.WorkQueuePolicy,
		// A command is only a request: nobody has been acked for it, and a
		// client resends until it is. So it need not survive a crash of its
		// server (a cluster replicates it anyway), and memory makes the queue
		// several times cheaper. Full means "unavailable, retry", not loss.
		Storage:    jetstream.MemoryStorage,
		Replicas:   s.Replicas,
		Duplicates: s.DuplicateWindow,
		MaxAge:     time.Hour,
		MaxBytes:   512 << 20,
		Discard:    jetstream.DiscardNew,
	}, {
		Name:               TimelineStream,
		Description:        "every conversation's events, one subject per conversation",
		Subjects:           []string{TimelineSubjects},
		Retention:          jetstream.LimitsPolicy,
		Storage:            s.storage(),
		Replicas:           s.Replicas,
		Duplicates:         s.DuplicateWindow,
		MaxAge:             s.MaxAge,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		AllowBatchPublish:  s.FastBatches,
	}}
	for _, cfg := range streams {
		// Update only what changed: most starts change nothing, and an
		// update while other processes create consumers is wasted work.
		if st, err := js.Stream(ctx, cfg.Name); err == nil && sameStream(st.CachedInfo().Config, cfg) {
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("create or update stream %s: %w", cfg.Name, err)
		}
	}
	dedupeTTL := s.DedupeTTL
	if dedupeTTL <= 0 {
		dedupeTTL = 25 * time.Hour
	}
	leaseTTL := s.LeaseTTL
	if leaseTTL <= 0 {
		leaseTTL = 6 * time.Second
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: DedupeBucket, Description: "command id to seq, for resends past the duplicate window", TTL: dedupeTTL, Storage: s.storage(), Replicas: s.Replicas},
		{Bucket: LeaseBucket, Description: "which sequencer owns which partition", TTL: leaseTTL, Storage: jetstream.MemoryStorage, Replicas: s.Replicas},
		{Bucket: CursorBucket, Description: "how far each projection fed in process has applied TIMELINE (fed.go)", Storage: s.storage(), Replicas: s.Replicas},
	}
	for _, cfg := range buckets {
		if kv, err := js.KeyValue(ctx, cfg.Bucket); err == nil {
			if st, err := kv.Status(ctx); err == nil {
				have := st.Config()
				if have.TTL == cfg.TTL && have.Replicas == cfg.Replicas && have.Storage == cfg.Storage && have.Description == cfg.Description {
					continue
				}
			}
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("create or update bucket %s: %w", cfg.Bucket, err)
		}
	}
	return allowAtomic(ctx, js, "KV_"+DedupeBucket)
}

// allowAtomic lets stream take atomic batches (Dedupe.Remember writes a
// batch of results in one); a bucket's own config cannot say so, and
// updating the bucket's config clears it.
func allowAtomic(ctx context.Context, js jetstream.JetStream, stream string) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", stream, err)
	}
	cfg := st.CachedInfo().Config
	if cfg.AllowAtomicPublish {
		return nil
	}
	cfg.AllowAtomicPublish = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("allow atomic batches on %s: %w", stream, err)
	}
	return nil
}

// sameStream reports whether have already has every setting want sets.
func sameStream(have, want jetstream.StreamConfig) bool {
	// The server stores "no limit" as -1 where we leave it zero.
	limit := func(v int64) int64 { return max(v, 0) }
	return slices.Equal(have.Subjects, want.Subjects) && have.Description == want.Description &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Replicas == want.Replicas &&
		have.Duplicates == want.Duplicates && have.MaxAge == want.MaxAge && limit(have.MaxBytes) == limit(want.MaxBytes) &&
		have.Discard == want.Discard && have.AllowDirect == want.AllowDirect && have.AllowAtomicPublish == want.AllowAtomicPublish &&
		have.AllowBatchPublish == want.AllowBatchPublish
}

// ErrConflict means another writer appended to a conversation first: reload
// its position and try again.
var ErrConflict = errors.New("timeline: conversation moved on (expected last sequence mismatch)")
