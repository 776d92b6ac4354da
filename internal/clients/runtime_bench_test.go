package clients

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkCutOff is what the kill switch adds to every guarded request:
// a lookup in memory (a map, so the number of clients does not matter).
func BenchmarkCutOff(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	r := runtimeRegistry(b, &now)
	if err := r.Disable(context.Background(), "cfg"); err != nil {
		b.Fatal(err)
	}
	for i := range 10 {
		if _, err := r.Create(context.Background(), &Config{ClientID: "c" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
	iat := now.Unix() + 10
	b.ResetTimer()
	for b.Loop() {
		if r.CutOff("c5", iat) {
			b.Fatal("refused")
		}
	}
}
