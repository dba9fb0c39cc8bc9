package events

// Errors carry a machine-readable code from the protocol (docs/protocol.md),
// kept apart from the human message, so that every role can answer a failure
// the same way over REST, WebSocket and internal replies.

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Code is one of the protocol's error codes.
type Code string

const (
	CodeBadRequest    Code = "bad_request"
	CodeUnauthorized  Code = "unauthorized"
	CodeForbidden     Code = "forbidden"
	CodeNotFound      Code = "not_found"
	CodeConflict      Code = "conflict"
	CodeTooLarge      Code = "too_large"
	CodeRecallExpired Code = "recall_expired"
	CodeRateLimited   Code = "rate_limited"
	CodeInternal      Code = "internal"
	CodeUnavailable   Code = "unavailable"
)

// Error is an error with a protocol code.
type Error struct {
	Code    Code
	Message string
	Err     error // the cause, for logs; never shown to clients
	// RetryAfter is when the client may try again, for refusals that
	// know it (rate limits): REST sends it as Retry-After.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return string(e.Code) + ": " + e.Message + ": " + e.Err.Error()
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Wrap returns an error with the given code whose cause is err.
func WrapError(code Code, err error, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// New returns an error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ParseCode reads a code that crossed a process boundary as a string (a
// sequencer's answer); one this build does not know is CodeInternal, so a
// client never sees a code the protocol does not name.
func ParseCode(s string) Code {
	switch c := Code(s); c {
	case CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeNotFound, CodeConflict,
		CodeTooLarge, CodeRecallExpired, CodeRateLimited, CodeInternal, CodeUnavailable:
		return c
	}
	return CodeInternal
}

// RateLimited returns a rate_limited error that says when to come back.
func RateLimited(retry time.Duration, format string, args ...any) error {
	return &Error{Code: CodeRateLimited, Message: fmt.Sprintf(format, args...), RetryAfter: retry}
}

// RetryAfterOf reports when the client may try again after err, or 0 when
// err does not say. Errors of other types may say it with a RetryAfter
// method (the timeline's admission control).
func RetryAfterOf(err error) time.Duration {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// RetrySeconds is a retry hint in whole seconds as clients are told it
// (the Retry-After header, the texts): rounded up, at least 1.
func RetrySeconds(d time.Duration) int { return int(math.Ceil(max(d.Seconds(), 1))) }

// CodeOf reports the protocol code carried by err, or CodeInternal when it has none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// MessageOf reports the human message for err; errors without a code get a
// generic text so that internals never leak to clients.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Is reports whether err carries code.
func IsCode(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
