package redis

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
)

// families keeps each refresh token family as one JSON value that expires
// when the family's newest token does. An Update reads it, lets decide
// decide, and writes the result with a compare-and-set script that stores
// it only if the value is still the one read: of concurrent redemptions of
// one token on any number of instances exactly one writes the next
// generation; the others read that and decide again (a retry or a reuse).
type families struct {
	b *backend
}

// casScript: KEYS[1] the family; ARGV: the value read ("" for none), the
// value to store, its expiry (unix ms). 1 when stored, 0 when the value
// changed meanwhile.
var casScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1`)

// keepAfter keeps a family's record a little past its newest token's
// expiry, so a reuse near the end is still seen as one.
const keepAfter = time.Minute

func (f *families) key(id string) string { return f.b.key("fam:" + id) }

func (f *families) load(ctx context.Context, id string) (state.Family, string, bool, error) {
	var rec state.Family
	raw, err := f.b.client.Get(ctx, f.key(id)).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return rec, "", false, nil
	case err != nil:
		return rec, "", false, unavailable(err)
	}
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		f.b.logger.Error("corrupt refresh token family record in redis; refusing it", zap.String("family", id))
		return rec, raw, false, state.ErrCorrupt
	}
	return rec, raw, true, nil
}

func (f *families) Load(ctx context.Context, id string) (state.Family, bool, error) {
	rec, _, found, err := f.load(ctx, id)
	return rec, found, err
}

func (f *families) Update(ctx context.Context, id string, decide func(state.Family, bool) (state.Family, bool, error)) error {
	for {
		rec, raw, found, err := f.load(ctx, id)
		if err != nil {
			return err
		}
		next, write, err := decide(rec, found)
		if err != nil || !write {
			return err
		}
		data, err := json.Marshal(next)
		if err != nil {
			return err
		}
		exp := next.Expires.Add(keepAfter)
		if min := f.b.now().Add(keepAfter); exp.Before(min) {
			exp = min
		}
		ok, err := casScript.Run(ctx, f.b.client, []string{f.key(id)}, raw, data, exp.UnixMilli()).Int()
		if err != nil {
			return unavailable(err)
		}
		if ok == 1 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

var _ state.Families = (*families)(nil)
