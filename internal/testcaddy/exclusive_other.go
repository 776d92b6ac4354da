//go:build !unix

package testcaddy

// lockFile does nothing where there is no flock.
func lockFile(string) (func(), error) { return func() {}, nil }
