package clients

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/testsync"
)

// peakComparer records the most compares ever running at once.
type peakComparer struct {
	caddyauth.Comparer
	delay           time.Duration
	running, peak   atomic.Int32
	calls           atomic.Int32
	gaugeAboveSlots atomic.Bool
}

func (p *peakComparer) Compare(hashed, plain []byte) (bool, error) {
	n := p.running.Add(1)
	defer p.running.Add(-1)
	p.calls.Add(1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}
	if g := gaugeValue(); g > float64(MaxConcurrentHashes) {
		p.gaugeAboveSlots.Store(true)
	}
	time.Sleep(p.delay)
	return p.Comparer.Compare(hashed, plain)
}

// gaugeValue reads the in-flight gauge, as /metrics shows it.
func gaugeValue() float64 {
	var m dto.Metric
	if err := metrics.PasswordHashesInFlight.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}

func hashedRegistry(t *testing.T, delay time.Duration) (*Registry, *peakComparer) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry([]*Config{{ClientID: "c", SecretHash: string(hash)}})
	if err != nil {
		t.Fatal(err)
	}
	p := &peakComparer{Comparer: r.byID["c"].comparer, delay: delay}
	r.byID["c"].comparer = p
	r.fake.comparer = p
	return r, p
}

// TestBurstOfWrongSecretsRunsAtMostOneHashPerCPU: a burst of distinct wrong
// secrets (known and unknown ids) never runs more password hashes at once
// than there are slots; the rest wait, and those that wait too long are
// refused with ErrBusy without a hash.
func TestBurstOfWrongSecretsRunsAtMostOneHashPerCPU(t *testing.T) {
	r, p := hashedRegistry(t, 30*time.Millisecond)
	var mu sync.Mutex
	results := map[string]int{}
	testsync.AtOnce(100, func(i int) {
		id := "c"
		if i%2 == 1 {
			id = fmt.Sprintf("unknown-%d", i)
		}
		_, err := r.Authenticate(id, fmt.Sprintf("guess-%d", i), nil)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, ErrInvalidClient):
			results["invalid"]++
		case errors.Is(err, ErrBusy):
			results["busy"]++
		default:
			results[fmt.Sprint(err)]++
		}
	})
	t.Logf("100 concurrent wrong secrets: %v; %d hashes ran, at most %d at once (%d slots)", results, p.calls.Load(), p.peak.Load(), MaxConcurrentHashes)
	if peak := p.peak.Load(); peak > int32(MaxConcurrentHashes) {
		t.Errorf("%d hashes ran at once, more than the %d slots", peak, MaxConcurrentHashes)
	}
	if p.gaugeAboveSlots.Load() {
		t.Error("the in-flight gauge showed more hashes than slots")
	}
	if g := gaugeValue(); g != 0 {
		t.Errorf("in-flight gauge %v after the burst, want 0", g)
	}
	if results["invalid"]+results["busy"] != 100 {
		t.Errorf("results %v, want only invalid and busy", results)
	}
	if int(p.calls.Load()) != results["invalid"] {
		t.Errorf("%d hashes ran for %d refusals: a busy refusal ran a hash", p.calls.Load(), results["invalid"])
	}
}

// TestBusyHashSlotsRefuseAfterHashWait: with every slot held, a check
// gives up after HashWait with ErrBusy and runs no hash.
func TestBusyHashSlotsRefuseAfterHashWait(t *testing.T) {
	r, p := hashedRegistry(t, 0)
	for range MaxConcurrentHashes {
		hashSlots <- struct{}{}
	}
	start := time.Now()
	_, err := r.Authenticate("c", "s3cret", nil)
	waited := time.Since(start)
	for range MaxConcurrentHashes {
		<-hashSlots
	}
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("with every slot held: %v, want ErrBusy", err)
	}
	if waited < HashWait {
		t.Errorf("gave up after %v, before HashWait %v", waited, HashWait)
	}
	if p.calls.Load() != 0 {
		t.Error("a hash ran without a slot")
	}
	if _, err := r.Authenticate("c", "s3cret", nil); err != nil {
		t.Fatalf("with free slots: %v", err)
	}
}

// TestAdmitRunsBeforeEachCompare: admit runs before every compare the
// registry makes (known, unknown, plain), not for a remembered success, and
// its refusal stops the check before any hash.
func TestAdmitRunsBeforeEachCompare(t *testing.T) {
	r, p := hashedRegistry(t, 0)
	admits := 0
	admit := func() error { admits++; return nil }
	if _, err := r.Authenticate("c", "s3cret", admit); err != nil || admits != 1 {
		t.Fatalf("first check: err %v, %d admits", err, admits)
	}
	if _, err := r.Authenticate("c", "s3cret", admit); err != nil || admits != 1 {
		t.Fatalf("cached check: err %v, %d admits, want none", err, admits)
	}
	if _, err := r.Authenticate("nobody", "x", admit); !errors.Is(err, ErrInvalidClient) || admits != 2 {
		t.Fatalf("unknown id: err %v, %d admits", err, admits)
	}
	refusal := errors.New("throttled")
	calls := p.calls.Load()
	for _, id := range []string{"c", "nobody"} {
		if _, err := r.Authenticate(id, "guess", func() error { return refusal }); err != refusal {
			t.Errorf("%s: a refused admit gave %v", id, err)
		}
	}
	if p.calls.Load() != calls {
		t.Error("a hash ran after admit refused")
	}
}
