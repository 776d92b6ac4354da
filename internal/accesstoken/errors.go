package accesstoken

import "errors"

// Reasons a token is refused, by the step that finds them. They become the
// error_description of answers, so they say what is wrong in general terms
// and never quote the token.
var (
	// Its form (splitCompact).
	ErrTooLarge   = errors.New("token too large")
	ErrMalformed  = errors.New("malformed token")
	ErrEncrypted  = errors.New("encrypted tokens are not accepted")
	ErrNotCompact = errors.New("only compact JWS tokens are accepted")

	// Its header and key (VerifySignature).
	ErrUnsigned    = errors.New("unsigned token")
	ErrCrit        = errors.New("critical header extensions are not supported")
	ErrUnknownKey  = errors.New("token signed with an unknown key")
	ErrAlgMismatch = errors.New("token algorithm does not match its key")
	ErrNoKeys      = errors.New("signing keys of the issuer are not available")

	// Its signature and claims (verifySignature, ParseClaims).
	ErrBadSignature = errors.New("bad signature")
	ErrBadClaims    = errors.New("malformed token claims")

	// Its validity (Check).
	ErrTyp          = errors.New("not an access token (typ must be at+jwt)")
	ErrExpired      = errors.New("token expired")
	ErrNoExpiry     = errors.New("token has no expiry")
	ErrNotYetValid  = errors.New("token not yet valid")
	ErrFutureIssued = errors.New("token issued in the future")

	// Whom it is for, and whether it still stands (Check).
	ErrIssuer   = errors.New("wrong issuer")
	ErrAudience = errors.New("token not meant for this audience")
	ErrRevoked  = errors.New("token revoked")
)
