package caddystorage

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/statetest"
)

func set(t *testing.T, c *Clients, id string, change func(*state.Client)) {
	t.Helper()
	err := c.Update(context.Background(), id, func(rec state.Client, _ bool) (state.Client, bool, error) {
		change(&rec)
		return rec, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustSync(t *testing.T, c *Clients) []string {
	t.Helper()
	changed, err := c.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return changed
}

// TestClientsConformance runs the state backends' suite on Caddy's file
// storage.
func TestClientsConformance(t *testing.T) {
	dir := t.TempDir()
	st := &certmagic.FileStorage{Path: dir}
	open := func(t *testing.T) state.Clients { return NewClients(st, "p", nil) }
	corrupt := func(t *testing.T, id string) {
		key := filepath.Join(dir, NewClients(st, "p", nil).recordKey(id))
		if err := os.WriteFile(key, []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	statetest.Clients(t, open, corrupt)
}

// TestClientsLogCompacted: the log keeps its last entries (LogLength; 20
// here); a reader further behind reads every record instead and misses
// nothing.
func TestClientsLogCompacted(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	a, b := NewClients(st, "p", nil), NewClients(st, "p", nil)
	a.keep = 20
	mustSync(t, b)
	for i := range a.keep + 5 {
		set(t, a, "c"+strconv.Itoa(i%7), func(r *state.Client) { r.NotBefore = int64(i) })
	}
	if _, err := st.Load(context.Background(), a.logDir()+"/0"); err == nil {
		t.Error("the oldest log entry was kept")
	}
	mustSync(t, b)
	if len(b.All()) != 7 {
		t.Errorf("b knows %d clients, want 7", len(b.All()))
	}
	if rec, _ := b.Get("c" + strconv.Itoa((a.keep+4)%7)); rec.NotBefore != int64(a.keep+4) {
		t.Errorf("last change not read: %+v", rec)
	}
}
