package keys

import "github.com/lestrrat-go/jwx/v3/jwk"

// PublicSet returns the published public keys, as served at the JWKS
// endpoint.
func (m *Manager) PublicSet() jwk.Set {
	set, err := jwk.Parse(m.JWKS())
	if err != nil {
		panic(err) // publish made it with json.Marshal
	}
	return set
}
