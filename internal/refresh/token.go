package refresh

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// tokenPrefix starts every refresh token of this format, so that it is
// told apart from the random tokens of the old format (legacy.go, always 43
// characters; these are longer) and from a future format. It has no dot,
// so that a refresh token is never taken for a JWT, and no character that
// form encoding would escape.
const tokenPrefix = "tgr1_"

// maxTokenLen bounds what is decoded at all; a real token is a few hundred
// characters (its grant's scopes and audiences).
const maxTokenLen = 4096

const (
	formatVersion = 1
	macLen        = sha256.Size
	// maxField bounds a string of the grant and the number of them.
	maxField = 1024
)

// claims is what a refresh token says. The token is these fields, encoded
// in a fixed order, followed by their HMAC-SHA-256 under the key named by
// kid: the token is its own record, and nothing is stored when it is issued.
type claims struct {
	kid        uint32
	family     [16]byte
	generation uint64
	issued     int64 // unix seconds
	expires    int64 // unix seconds
	grant      Grant
	// access is the access token issued with a family's first token, so
	// that revoking the family before its first redemption revokes it too.
	access AccessRef
	// key is the key the token's MAC was checked with (decode); not encoded.
	key *macKey
}

var errMalformed = errors.New("malformed refresh token")

// encode makes the token of c under key.
func (c *claims) encode(key *macKey) string {
	b := make([]byte, 0, 128)
	b = append(b, formatVersion)
	b = binary.BigEndian.AppendUint32(b, key.id)
	b = append(b, c.family[:]...)
	b = binary.AppendUvarint(b, c.generation)
	b = binary.AppendVarint(b, c.issued)
	b = binary.AppendVarint(b, c.expires)
	b = appendString(b, c.grant.ClientID)
	b = appendStrings(b, c.grant.Scopes)
	b = appendStrings(b, c.grant.Audience)
	b = appendString(b, c.access.JTI)
	var accessExp int64
	if c.access.JTI != "" {
		accessExp = c.access.Expires.Unix()
	}
	b = binary.AppendVarint(b, accessExp)
	b = append(b, key.mac(b)...)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// decode checks a token's MAC with the key it names (keyFor) and then
// reads its fields. Nothing of the token is parsed before the MAC holds.
func decode(token string, keyFor func(id uint32) *macKey) (*claims, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(token) > maxTokenLen {
		return nil, errMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	// The decoder skips line breaks: a token is only its canonical text.
	if err != nil || len(rest) != base64.RawURLEncoding.EncodedLen(len(raw)) || len(raw) < 1+4+macLen || raw[0] != formatVersion {
		return nil, errMalformed
	}
	body, mac := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	key := keyFor(binary.BigEndian.Uint32(body[1:5]))
	if key == nil || !hmac.Equal(key.mac(body), mac) {
		return nil, errMalformed
	}
	r := reader{b: body[5:]}
	c := &claims{kid: key.id, key: key}
	copy(c.family[:], r.bytes(len(c.family)))
	c.generation = r.uvarint()
	c.issued = r.varint()
	c.expires = r.varint()
	c.grant.ClientID = r.string()
	c.grant.Scopes = r.strings()
	c.grant.Audience = r.strings()
	c.access.JTI = r.string()
	if exp := r.varint(); c.access.JTI != "" {
		c.access.Expires = time.Unix(exp, 0)
	}
	if r.bad || len(r.b) != 0 {
		// Only a key holder can make a MAC: this is a bug, not an attack.
		return nil, errMalformed
	}
	return c, nil
}

// reader reads the fields of a token body; any error sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 { return readNumber(r, binary.Uvarint) }

func (r *reader) varint() int64 { return readNumber(r, binary.Varint) }

// readNumber reads one number of r with decode (binary.Uvarint or Varint).
func readNumber[T uint64 | int64](r *reader, decode func([]byte) (T, int)) T {
	v, n := decode(r.b)
	if r.bad || n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > maxField {
		r.bad = true
		return ""
	}
	return string(r.bytes(int(n)))
}

func (r *reader) strings() []string {
	n := r.uvarint()
	if n > maxField {
		r.bad = true
		return nil
	}
	var out []string
	for range n {
		out = append(out, r.string())
	}
	return out
}

// macKey is a key refresh tokens are authenticated with.
type macKey struct {
	id     uint32
	secret []byte
}

// mac is the HMAC-SHA-256 of data.
func (k *macKey) mac(data []byte) []byte {
	m := hmac.New(sha256.New, k.secret)
	m.Write(data)
	return m.Sum(nil)
}
