package refresh

import (
	"context"
	"io/fs"
	"path"
	"sync"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/testclock"
)

// midWriteStorage shows, until someone takes a lock, what a directory looks
// like while another instance is writing the first MAC key under its lock:
// certmagic's FileStorage writes through a randomly named temporary file
// beside the key, so a List at that moment names it and a Load of it reads
// a partial record.
type midWriteStorage struct {
	*certmagic.FileStorage
	mu      sync.Mutex
	writing bool
	temp    string
}

func (m *midWriteStorage) inWrite() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writing
}

func (m *midWriteStorage) List(ctx context.Context, dir string, rec bool) ([]string, error) {
	names, err := m.FileStorage.List(ctx, dir, rec)
	if m.inWrite() && dir == path.Dir(m.temp) {
		if err != nil {
			names, err = nil, nil
		}
		names = append(names, m.temp)
	}
	return names, err
}

func (m *midWriteStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if key == m.temp {
		if m.inWrite() {
			return []byte(`{"kid":"4b`), nil
		}
		return nil, fs.ErrNotExist
	}
	return m.FileStorage.Load(ctx, key)
}

// The writer finishes (its temporary file renamed away) before it unlocks,
// so whoever gets the lock next no longer sees the temporary file.
func (m *midWriteStorage) Lock(ctx context.Context, name string) error {
	if err := m.FileStorage.Lock(ctx, name); err != nil {
		return err
	}
	m.mu.Lock()
	m.writing = false
	m.mu.Unlock()
	return nil
}

// TestStartWhileAnotherInstanceWritesFirstKey: two instances starting on one
// storage at once; one lists the key directory while the other is writing
// the first key. Reading the temporary file as a corrupt key used to fail
// the start ("refresh token key 1265547101 is corrupt", seen in the cluster
// tests); the read is now repeated under the lock.
func TestStartWhileAnotherInstanceWritesFirstKey(t *testing.T) {
	st := &midWriteStorage{
		FileStorage: &certmagic.FileStorage{Path: t.TempDir()},
		writing:     true,
		temp:        prefix + "/refresh_keys/1265547101",
	}
	s, err := New(context.Background(), Config{Storage: st, Prefix: prefix, Now: testclock.Fixed().Now})
	if err != nil {
		t.Fatalf("start while another instance writes the first key: %v", err)
	}
	if _, err := s.ready(context.Background()); err != nil {
		t.Fatalf("keys not ready: %v", err)
	}
}
