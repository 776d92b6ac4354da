package filestorage

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const supported = true

// tryLock takes f's open-file-description lock without waiting.
func tryLock(f *os.File, exclusive bool) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: 0, Len: 0}
	if exclusive {
		lk.Type = unix.F_WRLCK
	}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	return err == nil, err
}

// stillAt reports whether f is still the file at name (not deleted or
// replaced since it was opened), and its size.
func stillAt(f *os.File, name string) (size int64, current bool, err error) {
	var held, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		return 0, false, err
	}
	if err := unix.Stat(name, &now); errors.Is(err, syscall.ENOENT) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	return held.Size, held.Nlink > 0 && held.Ino == now.Ino && held.Dev == now.Dev, nil
}

func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// syncGroup flushes f's whole file system (syncfs(2)): every record
// written before the call is on disk when it returns.
var syncGroup = func(f *os.File) error { return unix.Syncfs(int(f.Fd())) }
