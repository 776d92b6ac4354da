// Package dpop checks DPoP proofs (RFC 9449): the signed JWT a client sends
// in the `DPoP` header to show that it holds the private key an access
// token is bound to (the token's `cnf.jkt`, the RFC 7638 thumbprint of the
// key's public JWK).
//
// Both the token endpoint (tokenhandler) and the gate (validator) use one
// Checker per configuration; every Checker of a process records proofs in
// one replay set (replay.go), so a proof used at one route or endpoint is
// refused at every other. The replay set lives in this process only: a
// proof replayed to another instance of a cluster within its time window is
// refused there only if that instance saw it too (its htu, the URL it was
// made for, must still match). RFC 9449 §11.1 leaves the scope of the
// check to the server; server nonces (nonce.go) narrow the window further.
//
// What a proof must be, in the order Check tests it:
//
//   - a compact JWS of at most MaxProofSize bytes, canonical base64url;
//   - a protected header with unique members, `typ: dpop+jwt`, no `crit`
//     and no `b64`, an asymmetric `alg` of the Checker's list, and a `jwk`
//     holding a public key only (no private members, no `oct` key) of the
//     kind that algorithm needs: the algorithm comes from the key, so a
//     proof cannot name HS256 with the public key as its secret;
//   - a valid signature by that key;
//   - claims with unique members: `jti` (a non-empty string), `htm` equal
//     to the request's method, `htu` equal to the request's URL without
//     query and fragment (both normalized: scheme and host lowercased,
//     default ports dropped), `iat` within Window of now either way, `ath`
//     equal to the base64url SHA-256 of the access token when one is
//     presented, and `nonce` when the Checker has nonces;
//   - a `jti` this process has not accepted for the same key before.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokengate/tokengate/internal/jose"
	"github.com/tokengate/tokengate/internal/seenonce"
)

// Limits on what a proof may make a checker read.
const (
	// MaxProofSize caps a proof: a longer one is refused before anything in
	// it is decoded. An RSA-4096 key and signature fit with room to spare.
	MaxProofSize = 4 << 10
	// maxMembers caps the members of a proof's header and claims.
	maxMembers = 32
	// maxJTILength caps a proof's jti.
	maxJTILength = 256
)

// DefaultWindow is how far a proof's iat may be from now, either way.
const DefaultWindow = 60 * time.Second

// DefaultAlgs are the signature algorithms accepted in proofs by default.
var DefaultAlgs = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"}

// Errors. A refused proof's error is an *Error: its Code is the RFC 9449
// error code and its message a general reason that never quotes the proof.
var (
	ErrUseNonce = &Error{Code: "use_dpop_nonce", msg: "a fresh DPoP nonce is required"}

	errTooLarge   = invalid("DPoP proof too large")
	errMalformed  = invalid("malformed DPoP proof")
	errTyp        = invalid("DPoP proof typ must be dpop+jwt")
	errAlg        = invalid("DPoP proof algorithm not accepted")
	errKey        = invalid("DPoP proof key must be a public asymmetric JWK matching its algorithm")
	errSignature  = invalid("bad DPoP proof signature")
	errClaims     = invalid("malformed DPoP proof claims")
	errMethod     = invalid("DPoP proof htm does not match the request method")
	errURL        = invalid("DPoP proof htu does not match the request URL")
	errIssuedAt   = invalid("DPoP proof iat is outside the accepted window")
	errATH        = invalid("DPoP proof ath does not match the access token")
	errReplayed   = invalid("DPoP proof replayed")
	errReplayFull = invalid("too many recent DPoP proofs; retry later")
)

// Error is a refused proof.
type Error struct {
	// Code is invalid_dpop_proof or use_dpop_nonce.
	Code string
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Invalid makes an invalid_dpop_proof refusal: for what a user of a
// Checker finds wrong with a proof that passed (its key is not the
// token's).
func Invalid(msg string) *Error { return invalid(msg) }

func invalid(msg string) *Error { return &Error{Code: "invalid_dpop_proof", msg: msg} }

// Config is what a Checker accepts.
type Config struct {
	// Algs are the accepted signature algorithms. Default: DefaultAlgs.
	Algs []string
	// Window is how far iat may be from now, either way. Default:
	// DefaultWindow.
	Window time.Duration
	// Nonces, when set, makes every proof carry a nonce it issued.
	Nonces *Nonces
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Checker checks DPoP proofs.
type Checker struct {
	algs   []string
	window int64 // seconds
	nonces *Nonces
	now    func() time.Time
	replay *seenonce.Set
}

// New makes a Checker. It refuses an algorithm it cannot check.
func New(cfg Config) (*Checker, error) {
	c := &Checker{algs: cfg.Algs, window: int64(cfg.Window / time.Second), nonces: cfg.Nonces, now: cfg.Now, replay: shared}
	if len(c.algs) == 0 {
		c.algs = DefaultAlgs
	}
	for _, a := range c.algs {
		if !slices.Contains(supportedAlgs, a) {
			return nil, errors.New("dpop: unsupported algorithm " + a + " (" + strings.Join(supportedAlgs, ", ") + ")")
		}
	}
	if cfg.Window <= 0 {
		c.window = int64(DefaultWindow / time.Second)
	}
	if c.window < 1 {
		c.window = 1
	}
	if c.window > int64(DefaultWindow/time.Second) {
		c.replay = seenonce.New(MaxRecentProofs, 2*c.window)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Algs are the algorithms the checker accepts, for metadata and challenges.
func (c *Checker) Algs() []string { return c.algs }

// Nonces are the checker's nonces, or nil.
func (c *Checker) Nonces() *Nonces { return c.nonces }

// Request is what a proof must match.
type Request struct {
	// Method is the request's method (htm).
	Method string
	// URL is the absolute URL the request was sent to (htu); its query and
	// fragment are ignored.
	URL string
	// AccessToken is the token presented with the proof; "" at the token
	// endpoint, where no ath is checked.
	AccessToken string
}

// Proof is a proof that passed.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url:
	// the cnf.jkt of tokens bound to it.
	JKT string
}

// Check verifies a proof for a request and records its jti.
func (c *Checker) Check(proof string, req Request) (*Proof, error) {
	k, cl, err := c.read(proof)
	if err != nil {
		return nil, err
	}
	if cl.htm != req.Method {
		return nil, errMethod
	}
	if !sameURL(cl.htu, req.URL) {
		return nil, errURL
	}
	now := c.now().Unix()
	if cl.iat < now-c.window || cl.iat > now+c.window {
		return nil, errIssuedAt
	}
	if req.AccessToken != "" && !matchesATH(cl.ath, req.AccessToken) {
		return nil, errATH
	}
	if c.nonces != nil && !c.nonces.valid(cl.nonce, c.now()) {
		return nil, ErrUseNonce
	}
	// Recorded last: a proof refused for another reason uses up nothing.
	if err := c.record(k.jkt, cl.jti, now); err != nil {
		return nil, err
	}
	return &Proof{JKT: k.jkt}, nil
}

// read checks what a proof is by itself: its form, its header and key,
// its signature and the form of its claims. The claims' strings may share
// the memory of the decoded payload; nothing of them outlives Check.
func (c *Checker) read(proof string) (*proofKey, claims, error) {
	if len(proof) > MaxProofSize {
		return nil, claims{}, errTooLarge
	}
	hdrEnc, payloadEnc, _, _, ok := jose.SplitCompact(proof)
	if !ok {
		return nil, claims{}, errMalformed
	}
	k, err := c.proofKey(hdrEnc)
	if err != nil {
		return nil, claims{}, err
	}
	if !jose.VerifyCompact(k.alg, k.public, proof) {
		return nil, claims{}, errSignature
	}
	if k.fresh {
		rememberKey(hdrEnc, k)
	}
	cl, err := parseClaims(payloadEnc)
	if err != nil {
		return nil, claims{}, err
	}
	return k, cl, nil
}

// matchesATH reports whether ath is the ath claim of token, without
// building the expected one on the heap.
func matchesATH(ath, token string) bool {
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	var want [43]byte // base64url of 32 bytes, unpadded
	base64.RawURLEncoding.Encode(want[:], sum[:])
	return ath == string(want[:])
}

// ATH is the ath claim for an access token: its SHA-256, base64url.
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// proofKey is a proof's key as its header gives it, checked against the
// header's algorithm.
type proofKey struct {
	alg    jwa.SignatureAlgorithm
	public any
	jkt    string
	fresh  bool // not from the key cache: remember it once it verified
}

// supportedAlgs are the algorithms a checker can be configured with.
var supportedAlgs = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// proofKey reads a proof's protected header: typ, alg and the jwk, which
// must be a public key of the kind alg needs. A client signs all its
// proofs with one header, so past its first proof the key comes from the
// key cache; only then does jwx parse the JWK and compute its thumbprint.
func (c *Checker) proofKey(hdrEnc string) (*proofKey, error) {
	if k, ok := lookupKey(hdrEnc); ok {
		if !slices.Contains(c.algs, k.alg.String()) {
			return nil, errAlg
		}
		return k, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(hdrEnc)
	if err != nil || !json.Valid(raw) {
		return nil, errMalformed
	}
	var typ, alg, rawKey string
	var extension bool
	hdr := jose.NewObject(string(raw), maxMembers)
	for {
		name, val, ok := hdr.Next()
		if !ok {
			break
		}
		switch name {
		case "typ":
			typ = val
		case "alg":
			alg = val
		case "jwk":
			rawKey = val
		case "crit", "b64":
			extension = true
		}
	}
	if hdr.Bad() {
		return nil, errMalformed
	}
	if typ, ok := jose.String(typ); !ok || !strings.EqualFold(typ, "dpop+jwt") {
		return nil, errTyp
	}
	if extension {
		return nil, errMalformed // no extension is understood (RFC 7515 §4.1.11)
	}
	alg, ok := jose.String(alg)
	if !ok || !slices.Contains(c.algs, alg) {
		return nil, errAlg
	}
	if rawKey == "" {
		return nil, errKey
	}
	km := jose.NewObject(rawKey, maxMembers)
	for {
		name, _, ok := km.Next()
		if !ok {
			break
		}
		switch name {
		case "d", "p", "q", "dp", "dq", "qi", "oth", "k":
			// A private key in a header is a client's mistake that must
			// not be rewarded; jwk.ParseKey would accept it and derive
			// the public half.
			return nil, errKey
		}
	}
	if km.Bad() {
		return nil, errKey
	}
	sa, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return nil, errAlg
	}
	if pub, jkt, ok := plainJWK(rawKey); ok {
		if !keyFits(alg, pub) {
			return nil, errKey
		}
		return &proofKey{alg: sa, public: pub, jkt: jkt, fresh: true}, nil
	}
	key, err := jwk.ParseKey([]byte(rawKey))
	if err != nil {
		return nil, errKey
	}
	var pub any
	if err := jwk.Export(key, &pub); err != nil {
		return nil, errKey
	}
	if !keyFits(alg, pub) {
		return nil, errKey
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, errKey
	}
	return &proofKey{alg: sa, public: pub, jkt: base64.RawURLEncoding.EncodeToString(tp), fresh: true}, nil
}

// plainJWK reads the public JWK raw, without jwx, when it has the form
// clients send: an EC key of P-256, P-384 or P-521 (kty, crv, x, y) or an
// Ed25519 key (kty, crv, x), no other member, each coordinate the one
// canonical base64url spelling of its full length, on its curve. Such a
// JWK holds its RFC 7638 members exactly as the thumbprint writes them,
// so jkt is the SHA-256 of those members as they are. Any other JWK
// (more members, an RSA key, another encoding) is left to jwx: ok false.
func plainJWK(raw string) (pub any, jkt string, ok bool) {
	var kty, crv, x, y string
	obj := jose.NewObject(raw, 4)
	for {
		name, val, more := obj.Next()
		if !more {
			break
		}
		v, isString := jose.String(val)
		if !isString || val == "null" {
			return nil, "", false
		}
		switch name {
		case "kty":
			kty = v
		case "crv":
			crv = v
		case "x":
			x = v
		case "y":
			y = v
		default:
			return nil, "", false
		}
	}
	if obj.Bad() || x == "" || !coordinate(x) {
		return nil, "", false
	}
	var curve elliptic.Curve
	switch crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	case "Ed25519":
		if kty != "OKP" || y != "" || base64.RawURLEncoding.DecodedLen(len(x)) != ed25519.PublicKeySize {
			return nil, "", false
		}
		key := make([]byte, ed25519.PublicKeySize)
		if _, err := base64.RawURLEncoding.Decode(key, []byte(x)); err != nil {
			return nil, "", false
		}
		return ed25519.PublicKey(key), thumbprint(`{"crv":"Ed25519","kty":"OKP","x":"`, x, `"}`), true
	default:
		return nil, "", false
	}
	size := (curve.Params().BitSize + 7) / 8
	if kty != "EC" || y == "" || !coordinate(y) || base64.RawURLEncoding.DecodedLen(len(x)) != size || base64.RawURLEncoding.DecodedLen(len(y)) != size {
		return nil, "", false
	}
	point := make([]byte, 1+2*size)
	point[0] = 4 // uncompressed
	if _, err := base64.RawURLEncoding.Decode(point[1:1+size], []byte(x)); err != nil {
		return nil, "", false
	}
	if _, err := base64.RawURLEncoding.Decode(point[1+size:], []byte(y)); err != nil {
		return nil, "", false
	}
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, "", false // off the curve: jwx decides how it is refused
	}
	return key, thumbprint(`{"crv":"`+crv+`","kty":"EC","x":"`, x, `","y":"`+y+`"}`), true
}

// coordinate reports whether s is a canonical base64url string.
func coordinate(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return jose.Canonical(s)
}

// thumbprint is the base64url SHA-256 of the concatenated parts.
func thumbprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// keyFits reports whether pub is a key of the kind alg signs with.
func keyFits(alg string, pub any) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(k) == ed25519.PublicKeySize
	case *rsa.PublicKey:
		// RFC 7518 §3.3: 2048 bits at least.
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && k.N.BitLen() >= 2048
	}
	return false
}

// maxCachedKeys bounds the key cache; when it is full it is emptied and
// refilled.
const maxCachedKeys = 1024

// keyCache maps an encoded protected header to its key. A client signs all
// its proofs with one header (typ, alg, jwk), so the JWK is parsed and
// thumbprinted once per key. Only headers of proofs whose signature
// verified are added, so forged proofs cannot fill it.
var keyCache struct {
	m atomic.Pointer[sync.Map]
	n atomic.Int32
}

func lookupKey(enc string) (*proofKey, bool) {
	if m := keyCache.m.Load(); m != nil {
		if v, ok := m.Load(enc); ok {
			return v.(*proofKey), true
		}
	}
	return nil, false
}

func rememberKey(enc string, k *proofKey) {
	m := keyCache.m.Load()
	if m == nil || keyCache.n.Load() >= maxCachedKeys {
		m = new(sync.Map)
		keyCache.m.Store(m)
		keyCache.n.Store(0)
	}
	cached := *k
	cached.fresh = false
	if _, loaded := m.LoadOrStore(enc, &cached); !loaded {
		keyCache.n.Add(1)
	}
}

// claims are a proof's claims.
type claims struct {
	jti, htm, htu, ath, nonce string
	iat                       int64
}

// parseClaims reads a proof's claims strictly, as json.Unmarshal into
// strings and a float64 would read the members one by one, but from one
// object with unique, exactly named members: jti, htm and htu non-empty
// strings, ath and nonce strings when present, iat an integral number
// below 2^62 in magnitude (null reads as 0, which no window accepts).
func parseClaims(enc string) (claims, error) {
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || !json.Valid(raw) {
		return claims{}, errClaims
	}
	// raw is not changed after this: its members are read in place.
	obj := jose.NewObject(unsafe.String(unsafe.SliceData(raw), len(raw)), maxMembers)
	var cl claims
	var jti, htm, htu, ath, nonce, iat string
	for {
		name, val, ok := obj.Next()
		if !ok {
			break
		}
		switch name {
		case "jti":
			jti = val
		case "htm":
			htm = val
		case "htu":
			htu = val
		case "ath":
			ath = val
		case "nonce":
			nonce = val
		case "iat":
			iat = val
		}
	}
	if obj.Bad() {
		return claims{}, errClaims
	}
	for _, f := range []struct {
		span     string
		dst      *string
		required bool
	}{{jti, &cl.jti, true}, {htm, &cl.htm, true}, {htu, &cl.htu, true}, {ath, &cl.ath, false}, {nonce, &cl.nonce, false}} {
		if f.span == "" {
			if f.required {
				return claims{}, errClaims
			}
			continue
		}
		var ok bool
		if *f.dst, ok = jose.String(f.span); !ok || (f.required && *f.dst == "") {
			return claims{}, errClaims
		}
	}
	if len(cl.jti) > maxJTILength {
		return claims{}, errClaims
	}
	if cl.iat, err = issuedAt(iat); err != nil {
		return claims{}, err
	}
	return cl, nil
}

// issuedAt reads iat as json.Unmarshal into a float64 does, then demands
// an integral value below 2^62 in magnitude. Plain integers of up to 15
// digits (every real timestamp) skip the float conversion, whose result
// they equal.
func issuedAt(span string) (int64, error) {
	switch {
	case span == "null":
		return 0, nil
	case span == "" || span[0] != '-' && (span[0] < '0' || span[0] > '9'):
		return 0, errClaims // absent, a string, an object...
	}
	if digits := strings.TrimPrefix(span, "-"); len(digits) <= 15 && strings.Trim(digits, "0123456789") == "" {
		n, err := strconv.ParseInt(span, 10, 64)
		if err != nil {
			return 0, errClaims
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(span, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<62 {
		return 0, errClaims
	}
	return int64(f), nil
}

// sameURL reports whether a proof's htu names the request's URL: both
// normalized (normalURL) and equal. The request's URL, which the gate
// builds, is usually normal already and the client's htu the same string:
// then nothing needs parsing.
func sameURL(htu, reqURL string) bool {
	if htu == reqURL && isNormalURL(reqURL) {
		return true
	}
	want, ok := normalURL(reqURL)
	if !ok {
		return false
	}
	got, ok := normalURL(htu)
	return ok && got == want
}

// isNormalURL reports, for a plain URL only, whether normalURL(s) is s:
// scheme http or https, a host of lowercase letters, digits, dots and
// dashes with no port or a port that is not the scheme's default, and a
// path of unreserved characters and slashes (nothing to escape or
// unescape, no query, no fragment). It may answer false for other normal
// URLs; then they are parsed.
func isNormalURL(s string) bool {
	rest, ok := strings.CutPrefix(s, "https://")
	def := "443"
	if !ok {
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			return false
		}
		def = "80"
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return false // normalURL adds the "/"
	}
	host, path := rest[:slash], rest[slash:]
	name, port, hasPort := strings.Cut(host, ":")
	if name == "" || (hasPort && (port == "" || port == def)) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	for i := 0; i < len(port); i++ {
		if c := port[i]; c < '0' || c > '9' {
			return false
		}
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
			return false
		}
	}
	return true
}

// normalURL is u without query and fragment, normalized as RFC 9449 §4.3
// asks (RFC 3986 §6.2.2 and §6.2.3): lowercase scheme and host, no default
// port, "/" for an empty path. Only absolute http(s) URLs pass.
func normalURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "https" && scheme != "http") || u.Host == "" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}
