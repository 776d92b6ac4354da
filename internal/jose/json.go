package jose

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Object iterates over the members of a JSON object given as text that
// json.Valid accepted. It refuses, by stopping with Bad set, anything but
// an object, a member name seen before (compared after unescaping:
// parsers disagree on which of two members counts, encoding/json and jwx
// take the last), and more than max members. Values are returned as raw
// JSON text, spans of the input: reading them costs nothing until asked.
//
// It exists because encoding/json's struct decoding matches member names
// case-insensitively and takes the last of duplicates, and doing as
// strictly with json.Decoder costs dozens of allocations per object.
type Object struct {
	p       string
	i, n    int
	max     int
	started bool
	bad     bool
	names   [16]string // the first member names, for the duplicate check
	more    map[string]bool
}

// NewObject iterates over the object p (valid JSON) of at most max members.
func NewObject(p string, max int) Object { return Object{p: p, max: max} }

// Bad reports whether the iteration stopped on something refused.
func (o *Object) Bad() bool { return o.bad }

// Next returns the next member's name (unescaped) and raw value; ok is
// false after the last member, or when the object is refused (Bad).
func (o *Object) Next() (name, val string, ok bool) {
	p := o.p
	if !o.started {
		o.started = true
		i := skipSpace(p, 0)
		if i >= len(p) || p[i] != '{' {
			return o.fail()
		}
		o.i = skipSpace(p, i+1)
	} else {
		if o.i >= len(p) || p[o.i] != ',' {
			return "", "", false // '}', or an earlier refusal
		}
		o.i = skipSpace(p, o.i+1)
	}
	i := o.i
	if i >= len(p) || p[i] == '}' {
		return "", "", false
	}
	end := endOfString(p, i)
	name = p[i+1 : end-1]
	if strings.IndexByte(name, '\\') >= 0 || !utf8.ValidString(name) {
		var unescaped string // a variable of its own: only this branch allocates
		if json.Unmarshal([]byte(p[i:end]), &unescaped) != nil {
			return o.fail()
		}
		name = unescaped
	}
	if !o.first(name) {
		return o.fail()
	}
	i = skipSpace(p, skipSpace(p, end)+1) // past ':'
	end = endOfValue(p, i)
	o.i = skipSpace(p, end)
	return name, p[i:end], true
}

// first records name, reporting false for a repeated one or one too many.
func (o *Object) first(name string) bool {
	n := o.n
	o.n++
	if n >= o.max {
		return false
	}
	if n < len(o.names) {
		for _, seen := range o.names[:n] {
			if seen == name {
				return false
			}
		}
		o.names[n] = name
		return true
	}
	if o.more == nil {
		o.more = make(map[string]bool, 2*len(o.names))
		for _, seen := range o.names {
			o.more[seen] = true
		}
	}
	if o.more[name] {
		return false
	}
	o.more[name] = true
	return true
}

func (o *Object) fail() (string, string, bool) {
	o.bad, o.i = true, len(o.p)
	return "", "", false
}

func skipSpace(p string, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the string starting at p[i] == '"'.
func endOfString(p string, i int) int {
	for i++; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(p)
}

// endOfValue returns the index after the value starting at p[i].
func endOfValue(p string, i int) int {
	switch p[i] {
	case '"':
		return endOfString(p, i)
	case '{', '[':
		depth := 0
		for i < len(p) {
			switch p[i] {
			case '"':
				i = endOfString(p, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(p)
	}
	for i < len(p) {
		switch p[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// String decodes a raw JSON value that must be a string (or null, which
// is ""), as json.Unmarshal into a string does. Without escapes the result
// shares the input's memory.
func String(span string) (string, bool) {
	if span == "null" {
		return "", true
	}
	if span == "" || span[0] != '"' {
		return "", false
	}
	if in := span[1 : len(span)-1]; strings.IndexByte(in, '\\') < 0 && utf8.ValidString(in) {
		return in, true
	}
	var s string
	if json.Unmarshal([]byte(span), &s) != nil {
		return "", false
	}
	return s, true
}
