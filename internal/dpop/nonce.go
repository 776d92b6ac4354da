package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Nonces issues and checks server nonces (RFC 9449 §8, §9): a nonce is the
// time it was made and an HMAC of that time under a key, so checking one
// needs no state. A nonce is accepted for Lifetime after it was made. With
// NewNonces the key is random per process: with several instances behind
// one name, a client whose requests move between them is asked for a new
// nonce when it changes instance (the answer carries it, so one retry
// follows). Instances made with NewSharedNonces and one key accept each
// other's nonces.
type Nonces struct {
	key      [32]byte
	lifetime time.Duration
}

// NewNonces makes a nonce source whose nonces live for lifetime.
func NewNonces(lifetime time.Duration) *Nonces {
	n := &Nonces{lifetime: lifetime}
	if _, err := rand.Read(n.key[:]); err != nil {
		panic("dpop: no randomness for the nonce key: " + err.Error())
	}
	return n
}

// NewSharedNonces makes a nonce source whose nonces are made with key:
// every instance holding the same key accepts them.
func NewSharedNonces(key [32]byte, lifetime time.Duration) *Nonces {
	return &Nonces{key: key, lifetime: lifetime}
}

// Issue returns a fresh nonce.
func (n *Nonces) Issue(now time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	copy(b[8:], n.mac(b[:8]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (n *Nonces) mac(ts []byte) []byte {
	m := hmac.New(sha256.New, n.key[:])
	m.Write(ts)
	return m.Sum(nil)[:16]
}

// valid reports whether nonce is one of ours and still fresh.
func (n *Nonces) valid(nonce string, now time.Time) bool {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 8+16 || !hmac.Equal(b[8:], n.mac(b[:8])) {
		return false
	}
	made := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	return !now.Before(made.Add(-time.Second)) && now.Sub(made) <= n.lifetime
}
