package events

import (
	"fmt"
	"testing"
	"time"
)

func TestParseCode(t *testing.T) {
	for _, c := range []Code{CodeBadRequest, CodeForbidden, CodeRateLimited, CodeUnavailable, CodeRecallExpired} {
		if got := ParseCode(string(c)); got != c {
			t.Errorf("ParseCode(%q) = %q", c, got)
		}
	}
	for _, s := range []string{"", "nope", "Bad_Request"} {
		if got := ParseCode(s); got != CodeInternal {
			t.Errorf("ParseCode(%q) = %q, want internal", s, got)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	err := fmt.Errorf("send: %w", TooManyUserCommands(1500*time.Millisecond))
	if got := RetryAfterOf(err); got != 1500*time.Millisecond {
		t.Errorf("RetryAfterOf = %v", got)
	}
	if got := MessageOf(err); got != "too many commands from this user; retry in 2s with the same id" {
		t.Errorf("message = %q", got)
	}
	if RetryAfterOf(Errorf(CodeBadRequest, "x")) != 0 {
		t.Error("a bad request says when to retry")
	}
	if RetrySeconds(0) != 1 || RetrySeconds(2001*time.Millisecond) != 3 {
		t.Error("RetrySeconds rounds up, at least 1")
	}
	if !RoleOwner.Privileged() || !RoleAdmin.Privileged() || RoleMember.Privileged() {
		t.Error("Privileged")
	}
}
