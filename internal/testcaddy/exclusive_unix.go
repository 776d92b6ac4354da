//go:build unix

package testcaddy

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on name, waiting for it; the kernel
// drops it if the process dies.
func lockFile(name string) (func(), error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
