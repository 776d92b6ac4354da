package state

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Clients holds what an issuer keeps of its clients at run time, one
// record per client id: the definition and secret hashes of a client made
// through the admin API, and the cut-off of any client, config clients
// included (disabled, and a time before which its tokens are refused: the
// kill switch, which needs no list of the client's tokens).
//
// Every instance sharing the state sees a change at its next Sync (every
// revocation_sync), or as soon as it is pushed with a ClientsPusher; the
// instance that made it sees it at once. Get and All
// read memory only: the gate asks on every request. The embedded backend
// is internal/state/caddystorage, used on every backend's Storage unless
// the backend's Handles set Clients of its own; statetest.Clients is the
// conformance suite such a backend must pass.
type Clients interface {
	// Update is the compare-and-set of one client's record, under a lock
	// held by one instance of the cluster at a time: it calls decide with
	// the record as stored and stores the record decide returns when write
	// is true. decide may be called more than once and must only decide;
	// its error is returned as is, and nothing is stored. When Update
	// returns nil this handle's memory holds the new record.
	Update(ctx context.Context, id string, decide func(rec Client, found bool) (next Client, write bool, err error)) error
	// Get returns the record of a client as this handle knows it.
	Get(id string) (Client, bool)
	// All returns every record this handle knows.
	All() []Client
	// Sync reads the records changed through other handles since the last
	// Sync, reading only what changed, and returns their ids. The first
	// Sync reads every record.
	Sync(ctx context.Context) (changed []string, err error)
}

// ClientsPusher is a Clients that learns of the changes made through other
// handles as they are made (the Redis backend's pub/sub), not only at Sync.
// OnChange sets a function it calls, from a goroutine of its own, once it
// has read such changes: the caller then calls Sync, which names them, to
// apply them at once rather than at its next tick.
type ClientsPusher interface {
	OnChange(func(context.Context))
}

// Client is the record of one client.
type Client struct {
	ID string `json:"client_id"`
	// Config is a client made at run time, in the JSON shape of a
	// configured client (clients.Config) without secrets. It is empty in a
	// record that only holds a configured client's cut-off, or that keeps
	// a deleted client's cut-off.
	Config json.RawMessage `json:"config,omitempty"`
	// Secrets are the SHA-256 hashes of its secrets, newest first. A
	// secret replaced by a rotation stays valid until its Expires.
	Secrets []Secret `json:"secrets,omitempty"`
	// Disabled refuses the client at the token endpoint and every token
	// it holds.
	Disabled bool `json:"disabled,omitempty"`
	// NotBefore, in Unix seconds, refuses every token of the client issued
	// before it (iat < NotBefore), access and refresh tokens alike.
	NotBefore int64 `json:"not_before,omitempty"`
	// Created and Updated are when the record was made and last changed.
	Created time.Time `json:"created,omitzero"`
	Updated time.Time `json:"updated,omitzero"`
}

// Secret is a client secret as stored: its SHA-256, hex-encoded.
type Secret struct {
	SHA256 string `json:"sha256"`
	// Expires, when set, is when a replaced secret stops being accepted.
	Expires time.Time `json:"expires,omitzero"`
}

// Refuses reports whether the record refuses a token of its client issued
// at iat (Unix seconds).
func (c *Client) Refuses(iat int64) bool { return c.Disabled || iat < c.NotBefore }

// ErrCorruptClient is a client record that cannot be read. Its client is
// treated as disabled until the record is written again.
var ErrCorruptClient = errors.New("corrupt client record")
