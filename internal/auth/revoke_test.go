package auth

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func revocationsWith(n int) *Revocations {
	r := &Revocations{sessions: map[string]time.Time{}}
	exp := time.Now().Add(time.Hour)
	for i := range n {
		r.sessions["s"+strconv.Itoa(i)] = exp
	}
	return r
}

func TestRevokedLookup(t *testing.T) {
	r := revocationsWith(10)
	if !r.Revoked("s3") || r.Revoked("s10") {
		t.Fatal("lookup wrong")
	}
	if r.Check(Claims{SessionID: "s3"}) == nil || r.Check(Claims{SessionID: "x"}) != nil {
		t.Fatal("check wrong")
	}
}

// The revocation check every request pays: a read-locked map lookup, with
// 100,000 revoked sessions held.
func BenchmarkRevocationCheck(b *testing.B) {
	r := revocationsWith(100_000)
	c := Claims{SessionID: "01JNOTREVOKEDSESSION000000"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r.Check(c) != nil {
				b.Fatal("revoked")
			}
		}
	})
}

// For scale: verifying the token itself (HMAC-SHA256 JWT), which every
// request pays anyway.
func BenchmarkTokenVerify(b *testing.B) {
	tk, _ := NewTokens("benchmark-secret-0123456789", time.Hour)
	tok, _, _ := tk.Issue("u1", "s1", "", time.Now())
	req, _ := http.NewRequest("GET", "/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.FromRequest(req, false); err != nil {
			b.Fatal(err)
		}
	}
}
