package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/state"
)

// seenOnce is the replay set of client assertions: one key per claim,
// <key_prefix>{<issuer id>}:seen:<hash>, set by SET NX PXAT so that of
// concurrent claims on any number of instances exactly one sets it, and
// Redis deletes it when the claim expires. Nothing needs sweeping.
type seenOnce struct {
	b *backend
}

func (s *seenOnce) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	if d := until.Sub(s.b.now()); d > state.SeenOnceMaxTTL {
		return false, fmt.Errorf("seen-once claim lasting %v, longer than %v", d, state.SeenOnceMaxTTL)
	}
	sum := sha256.Sum256([]byte(key))
	// PXAT rounded up: a claim never ends before its until.
	pxat := until.Add(time.Millisecond - 1).UnixMilli()
	err := s.b.client.Do(ctx, "SET", s.b.key("seen:"+hex.EncodeToString(sum[:16])), "1", "NX", "PXAT", pxat).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, goredis.Nil):
		return false, nil
	default:
		return false, unavailable(err)
	}
}

var _ state.SeenOnce = (*seenOnce)(nil)
