package filestorage

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/testsync"
)

func newDir(t *testing.T, path string) (*certmagic.FileStorage, *Dir) {
	t.Helper()
	fst := &certmagic.FileStorage{Path: path}
	d, ok := For(fst)
	if !ok {
		t.Fatal("For refused a FileStorage")
	}
	return fst, d
}

func TestForOnlyFileStorage(t *testing.T) {
	type other struct{ certmagic.Storage }
	if _, ok := For(other{&certmagic.FileStorage{Path: t.TempDir()}}); ok {
		t.Fatal("For accepted a storage that is not a *certmagic.FileStorage")
	}
}

type counter struct {
	N int `json:"n"`
}

// increment adds one to the counter at key, n times.
func increment(t testing.TB, d *Dir, key string, n int) {
	for range n {
		err := d.Update(context.Background(), key, func(old []byte) ([]byte, bool, error) {
			var c counter
			if old != nil {
				if err := json.Unmarshal(old, &c); err != nil {
					return nil, false, err
				}
			}
			c.N++
			data, err := json.Marshal(c)
			return data, true, err
		})
		if err != nil {
			t.Error(err)
			return
		}
	}
}

func load(t *testing.T, fst *certmagic.FileStorage, key string) counter {
	t.Helper()
	data, err := fst.Load(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var c counter
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("FileStorage.Load read %q: %v", data, err)
	}
	return c
}

// Concurrent Updates in one process and in another lose nothing: the lock
// holds between goroutines and between processes.
func TestUpdateExactlyOnceAcrossProcesses(t *testing.T) {
	if path := os.Getenv("FILESTORAGE_CHILD"); path != "" {
		_, d := newDir(t, path)
		testsync.AtOnce(4, func(int) { increment(t, d, "p/counter", 100) })
		return
	}
	path := t.TempDir()
	fst, d := newDir(t, path)
	child := exec.Command(os.Args[0], "-test.run", "^TestUpdateExactlyOnceAcrossProcesses$")
	child.Env = append(os.Environ(), "FILESTORAGE_CHILD="+path)
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	testsync.AtOnce(4, func(int) { increment(t, d, "p/counter", 100) })
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	if c := load(t, fst, "p/counter"); c.N != 800 {
		t.Fatalf("800 increments from two processes left %d: updates were lost", c.N)
	}
}

// A record rewritten shorter keeps its file's size, padded with JSON
// whitespace, and reads back as the new record through FileStorage.Load.
func TestRecordPaddedAndReadableByFileStorage(t *testing.T) {
	fst, d := newDir(t, t.TempDir())
	put := func(v string) {
		err := d.Update(context.Background(), "p/r", func([]byte) ([]byte, bool, error) {
			return []byte(strconv.Quote(v)), true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("x", 600)
	put(long)
	put("short")
	data, err := fst.Load(context.Background(), "p/r")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := json.Unmarshal(data, &got); err != nil || got != "short" {
		t.Fatalf("read %q (%v), want \"short\"", got, err)
	}
	if len(data) != 768 {
		t.Fatalf("file is %d bytes, want 768 (600 rounded up to 256, kept)", len(data))
	}
	if strings.TrimSpace(string(data[len(`"short"`):])) != "" {
		t.Fatal("the padding is not whitespace")
	}
}

// Load waits while an Update holds the record, so it never reads one
// half-written, and then reads what the Update wrote.
func TestLoadWaitsForUpdate(t *testing.T) {
	_, d := newDir(t, t.TempDir())
	ctx := context.Background()
	increment(t, d, "p/c", 1)
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- d.Update(ctx, "p/c", func([]byte) ([]byte, bool, error) {
			close(inside)
			<-release
			return []byte(`{"n":2}`), true, nil
		})
	}()
	<-inside
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if data, err := d.Load(short, "p/c"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Load during an Update returned %q, %v; want it to wait", data, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	data, err := d.Load(ctx, "p/c")
	var c counter
	if err != nil || json.Unmarshal(data, &c) != nil || c.N != 2 {
		t.Fatalf("Load after the Update: %q, %v", data, err)
	}
}

// A decision not to write leaves no file; a missing record is
// fs.ErrNotExist to Load.
func TestNoWriteLeavesNothing(t *testing.T) {
	fst, d := newDir(t, t.TempDir())
	ctx := context.Background()
	if err := d.Update(ctx, "p/none", func(old []byte) ([]byte, bool, error) {
		if old != nil {
			t.Errorf("a record never written read as %q", old)
		}
		return nil, false, nil
	}); err != nil {
		t.Fatal(err)
	}
	if fst.Exists(ctx, "p/none") {
		t.Fatal("a decision not to write left a file")
	}
	if _, err := d.Load(ctx, "p/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing record: %v", err)
	}
}

// An Update that opened a record which is then deleted (a Sweep) starts
// again on the file now at the key, rather than writing to the deleted one.
func TestUpdateOfDeletedFileStartsAgain(t *testing.T) {
	fst, d := newDir(t, t.TempDir())
	ctx := context.Background()
	increment(t, d, "p/c", 1)
	name := fst.Filename("p/c")
	f, created, err := openRecord(name)
	if err != nil || created {
		t.Fatalf("openRecord: created %v, %v", created, err)
	}
	defer f.Close()
	if err := fst.Delete(ctx, "p/c"); err != nil {
		t.Fatal(err)
	}
	done, err := d.updateLocked(ctx, f, name, false, func([]byte) ([]byte, bool, error) {
		t.Error("update ran on a deleted file")
		return []byte(`{"n":99}`), true, nil
	})
	if done || err != nil {
		t.Fatalf("updateLocked on a deleted file: done %v, %v", done, err)
	}
}

// Concurrent Updates share flushes, and none returns before a flush that
// began after its record was handed over for writing.
func TestUpdatesShareFlushes(t *testing.T) {
	if syncGroup == nil {
		t.Skip("no group flush on this system: each record is synced on its own")
	}
	type span struct{ start, end time.Time }
	var mu sync.Mutex
	var flushes []span
	real := syncGroup
	syncGroup = func(f *os.File) error {
		start := time.Now()
		time.Sleep(5 * time.Millisecond) // a slow disk, so that writes gather
		err := real(f)
		mu.Lock()
		flushes = append(flushes, span{start, time.Now()})
		mu.Unlock()
		return err
	}
	defer func() { syncGroup = real }()
	_, d := newDir(t, t.TempDir())
	const n = 32
	handed, returned := make([]time.Time, n), make([]time.Time, n)
	testsync.AtOnce(n, func(i int) {
		err := d.Update(context.Background(), "p/k"+strconv.Itoa(i), func([]byte) ([]byte, bool, error) {
			handed[i] = time.Now()
			return []byte(`{"n":1}`), true, nil
		})
		returned[i] = time.Now()
		if err != nil {
			t.Error(err)
		}
	})
	if len(flushes) >= n {
		t.Errorf("%d concurrent Updates ran %d flushes: none shared", n, len(flushes))
	}
	for i := range n {
		covered := false
		for _, f := range flushes {
			if !f.start.Before(handed[i]) && !f.end.After(returned[i]) {
				covered = true
			}
		}
		if !covered {
			t.Fatalf("Update %d returned without a flush that began after its write", i)
		}
	}
	t.Logf("%d Updates, %d flushes", n, len(flushes))
}
