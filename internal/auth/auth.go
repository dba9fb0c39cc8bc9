// Package auth hashes passwords and issues and verifies the signed tokens
// that every REST request and WebSocket carries.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/seqchat/seqchat/events"
	"golang.org/x/crypto/bcrypt"
)

// Claims is what a token says about its holder.
type Claims struct {
	UserID    string
	SessionID string
	Device    string
	ExpiresAt time.Time
}

// Tokens signs and verifies tokens (JWT, HS256).
type Tokens struct {
	secret []byte
	ttl    time.Duration
}

// NewTokens returns a signer for secret; tokens live for ttl.
func NewTokens(secret string, ttl time.Duration) (*Tokens, error) {
	if len(secret) < 16 {
		return nil, errors.New("token secret must be at least 16 bytes")
	}
	return &Tokens{secret: []byte(secret), ttl: ttl}, nil
}

type jwtClaims struct {
	Device string `json:"dev,omitempty"`
	jwt.RegisteredClaims
}

// Issue returns a token for the user's new session.
func (t *Tokens) Issue(userID, sessionID, device string, now time.Time) (string, Claims, error) {
	c := Claims{UserID: userID, SessionID: sessionID, Device: device, ExpiresAt: now.Add(t.ttl).Truncate(time.Second)}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{
		Device: device,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   userID,
			ID:        sessionID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
	})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", c, fmt.Errorf("sign token: %w", err)
	}
	return s, c, nil
}

// Verify checks a token's signature and expiry.
func (t *Tokens) Verify(token string) (Claims, error) {
	var jc jwtClaims
	_, err := jwt.ParseWithClaims(token, &jc, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired())
	if err != nil || jc.Subject == "" {
		return Claims{}, events.Errorf(events.CodeUnauthorized, "invalid or expired token")
	}
	return Claims{UserID: jc.Subject, SessionID: jc.ID, Device: jc.Device, ExpiresAt: jc.ExpiresAt.Time}, nil
}

// FromRequest verifies the request's bearer token, or its ?token= when
// allowQuery (browsers cannot set headers on a WebSocket).
func (t *Tokens) FromRequest(r *http.Request, allowQuery bool) (Claims, error) {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return Claims{}, events.Errorf(events.CodeUnauthorized, "Authorization must be Bearer <token>")
		}
		tok = strings.TrimSpace(rest)
	} else if allowQuery {
		tok = r.URL.Query().Get("token")
	}
	if tok == "" {
		return Claims{}, events.Errorf(events.CodeUnauthorized, "missing token")
	}
	return t.Verify(tok)
}

// HashPassword hashes a password with bcrypt at the given cost.
func HashPassword(password string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether password matches hash.
func CheckPassword(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
