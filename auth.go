package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenLeeway is the clock skew allowed on exp and nbf (PROTOCOL.md).
const tokenLeeway = 30 * time.Second

// claims is what a verified handshake token grants: the user id, and the
// rooms it may join (nil: any room).
type claims struct {
	sub   string
	rooms map[string]bool
}

// allows answers forbidden when the token does not grant userID in room. A
// nil *claims (authentication off) allows everything.
func (c *claims) allows(userID, room string) error {
	switch {
	case c == nil:
		return nil
	case userID != c.sub:
		return forbidden("userId does not match the token's subject")
	case c.rooms != nil && !c.rooms[room]:
		return forbidden("the token does not grant this room")
	}
	return nil
}

// verifyToken checks an HS256 token signed with secret: the algorithm is
// pinned (no "none", no RS/HS confusion), exp is required, exp and nbf get
// tokenLeeway, sub must be a non-empty string and rooms, when present, an
// array of strings.
func verifyToken(secret []byte, token string) (*claims, error) {
	if token == "" {
		return nil, errors.New("token missing")
	}
	mc := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, mc, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithLeeway(tokenLeeway), jwt.WithExpirationRequired())
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	sub, ok := mc["sub"].(string)
	if !ok || sub == "" {
		return nil, errors.New("token: sub must be a non-empty string")
	}
	c := &claims{sub: sub}
	if raw, ok := mc["rooms"]; ok {
		list, ok := raw.([]any)
		if !ok {
			return nil, errors.New("token: rooms must be an array of strings")
		}
		c.rooms = make(map[string]bool, len(list))
		for _, r := range list {
			s, ok := r.(string)
			if !ok {
				return nil, errors.New("token: rooms must be an array of strings")
			}
			c.rooms[s] = true
		}
	}
	return c, nil
}
