package accesstoken

import (
	"encoding/json"
	"strings"
)

// Claim names as routes write them (`claim`, scope_claim and the
// {http.auth.user.claims.NAME} placeholders) reach into nested objects,
// where identity providers put roles (Keycloak's realm_access.roles and
// resource_access.<client>.roles):
//
//   - a top-level claim named exactly NAME wins, dots and all, so
//     Auth0-style names such as https://example.com/roles need nothing
//     special;
//   - otherwise NAME is a path: dots separate the members of nested
//     objects, and `\.` is a dot inside a member name (`\\` a backslash),
//     as in resource_access.my\.app.roles.
//
// A path goes through objects only; its last member may be any value (an
// array is matched element by element). The claims are the signed payload
// of a trusted issuer, so neither rule lets a caller choose which claim is
// read.

// SplitClaimPath splits a claim name into the members of its path.
func SplitClaimPath(name string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '\\' && i+1 < len(name) && (name[i+1] == '.' || name[i+1] == '\\'):
			cur.WriteByte(name[i+1])
			i++
		case c == '.':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}

// lookup finds a claim by name: the top-level claim of that exact name,
// else the value at the end of its path.
func (c *Claims) lookup(name string) (json.RawMessage, bool) {
	raw := c.maps().raw
	if v, ok := raw[name]; ok {
		return v, true
	}
	path := SplitClaimPath(name)
	if len(path) == 1 {
		v, ok := raw[path[0]] // a name with an escaped dot and no path
		return v, ok
	}
	v, ok := raw[path[0]]
	for _, member := range path[1:] {
		if !ok {
			return nil, false
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(v, &obj) != nil {
			return nil, false // not an object, or null
		}
		v, ok = obj[member]
	}
	return v, ok
}
