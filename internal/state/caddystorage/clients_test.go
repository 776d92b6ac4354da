package caddystorage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state"
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

// TestClientsSeenByASecondHandle: a change made through one handle is
// read by another at its next Sync, and only the changed records are read.
func TestClientsSeenByASecondHandle(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	a, b := NewClients(st, "p", nil), NewClients(st, "p", nil)
	mustSync(t, a)
	mustSync(t, b)
	set(t, a, "x", func(r *state.Client) { r.Disabled = true })
	if rec, ok := a.Get("x"); !ok || !rec.Disabled {
		t.Fatal("the writing handle does not see its change at once")
	}
	if _, ok := b.Get("x"); ok {
		t.Fatal("b saw the change before Sync")
	}
	if got := mustSync(t, b); len(got) != 1 || got[0] != "x" {
		t.Fatalf("changed = %v", got)
	}
	if rec, ok := b.Get("x"); !ok || !rec.Disabled || !rec.Refuses(1<<40) {
		t.Fatalf("b: %+v %v", rec, ok)
	}
	if got := mustSync(t, b); len(got) != 0 {
		t.Errorf("a Sync with nothing new read %v", got)
	}
	// A new handle (a restart) reads every record.
	c := NewClients(st, "p", nil)
	if got := mustSync(t, c); len(got) != 1 {
		t.Errorf("a new handle read %v", got)
	}
	// decide's error stores nothing.
	boom := errors.New("boom")
	if err := a.Update(context.Background(), "y", func(state.Client, bool) (state.Client, bool, error) { return state.Client{}, true, boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got := mustSync(t, b); len(got) != 0 {
		t.Errorf("a refused update was logged: %v", got)
	}
}

// TestClientsCorruptRecordRefused: a record that cannot be read leaves its
// client refused, not allowed.
func TestClientsCorruptRecordRefused(t *testing.T) {
	dir := t.TempDir()
	st := &certmagic.FileStorage{Path: dir}
	a, b := NewClients(st, "p", nil), NewClients(st, "p", nil)
	mustSync(t, b)
	set(t, a, "x", func(r *state.Client) { r.NotBefore = 5 })
	key := filepath.Join(dir, a.recordKey("x"))
	if err := os.WriteFile(key, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	if rec, ok := b.Get("x"); !ok || !rec.Refuses(100) {
		t.Errorf("corrupt record: %+v %v, want the client refused", rec, ok)
	}
}

// TestClientsLogCompacted: the log keeps LogLength entries; a reader
// further behind reads every record instead and misses nothing.
func TestClientsLogCompacted(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	a, b := NewClients(st, "p", nil), NewClients(st, "p", nil)
	mustSync(t, b)
	for i := range LogLength + 5 {
		set(t, a, "c"+strconv.Itoa(i%7), func(r *state.Client) { r.NotBefore = int64(i) })
	}
	if _, err := st.Load(context.Background(), a.logDir()+"/0"); err == nil {
		t.Error("the oldest log entry was kept")
	}
	mustSync(t, b)
	if len(b.All()) != 7 {
		t.Errorf("b knows %d clients, want 7", len(b.All()))
	}
	if rec, _ := b.Get("c" + strconv.Itoa((LogLength+4)%7)); rec.NotBefore != LogLength+4 {
		t.Errorf("last change not read: %+v", rec)
	}
}
