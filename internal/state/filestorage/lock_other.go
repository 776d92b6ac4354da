//go:build !linux

package filestorage

import (
	"errors"
	"os"
)

// supported is false: without open-file-description locks, records are
// updated through certmagic.Storage (Lock, Load, Store, Unlock).
const supported = false

var errUnsupported = errors.New("filestorage: not supported on this system")

func tryLock(*os.File, bool) (bool, error) { return false, errUnsupported }

func stillAt(*os.File, string) (int64, bool, error) { return 0, false, errUnsupported }

func datasync(f *os.File) error { return f.Sync() }

// syncGroup is nil: each record is synced on its own.
var syncGroup func(*os.File) error
