package revocation

import (
	"context"
	"io/fs"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// discard is a storage that keeps nothing, so that a benchmark measures
// the in-memory list alone.
type discard struct{}

func (discard) Lock(context.Context, string) error          { return nil }
func (discard) Unlock(context.Context, string) error        { return nil }
func (discard) Store(context.Context, string, []byte) error { return nil }
func (discard) Load(context.Context, string) ([]byte, error) {
	return nil, fs.ErrNotExist
}
func (discard) Delete(context.Context, string) error { return nil }
func (discard) Exists(context.Context, string) bool  { return false }
func (discard) List(context.Context, string, bool) ([]string, error) {
	return nil, fs.ErrNotExist
}
func (discard) Stat(context.Context, string) (certmagic.KeyInfo, error) {
	return certmagic.KeyInfo{}, fs.ErrNotExist
}

// BenchmarkMemoryPerRevocation reports the heap each live revocation
// holds (B/revocation), over 100,000 revocations of typical jtis.
func BenchmarkMemoryPerRevocation(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		s := newStoreOn(discard{})
		for i := range n {
			// 22 characters, as the issuer's jtis.
			jti := "jti-" + strconv.FormatInt(int64(1e17)+int64(i), 10)
			if err := s.Revoke(ctx, jti, exp); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/revocation")
		runtime.KeepAlive(s)
		b.StartTimer()
	}
}

func newStoreOn(st certmagic.Storage) *Store { return New(Config{Storage: st, Prefix: "bench"}) }
