package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenLeeway is the clock skew allowed on exp and nbf (PROTOCOL.md).
const tokenLeeway = 30 * time.Second

// claims is what a verified handshake token grants: the user id, the rooms
// it may join (nil: any room), and the token's other claims.
type claims struct {
	sub    string
	rooms  map[string]bool
	custom map[string]any
}

// Claims is a verified token's content, as modules see it (Socket.Claims).
type Claims struct {
	Subject string // sub: the user id
	// Rooms is the rooms claim: the rooms (and topics) the token grants; nil
	// when the token has no rooms claim (any room), empty when it grants none.
	Rooms []string
	// Custom holds every other claim (exp, iat, app-specific ones), as
	// encoding/json decodes them.
	Custom map[string]any
}

// Allows reports whether the token grants room: a rooms claim lists it, or
// there is none.
func (c *Claims) Allows(room string) bool {
	return c.Rooms == nil || slices.Contains(c.Rooms, room)
}

// public returns the exported view of c.
func (c *claims) public() *Claims {
	out := &Claims{Subject: c.sub, Custom: maps.Clone(c.custom)}
	if c.rooms != nil {
		out.Rooms = slices.Sorted(maps.Keys(c.rooms))
		if out.Rooms == nil {
			out.Rooms = []string{}
		}
	}
	return out
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
	c := &claims{sub: sub, custom: make(map[string]any)}
	for k, v := range mc {
		if k != "sub" && k != "rooms" {
			c.custom[k] = v
		}
	}
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
