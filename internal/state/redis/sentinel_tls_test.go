package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testredis"
)

// works checks one handle's state end to end against a real server: a
// file stored by a is loaded by b, a revocation at a is pushed to b, a
// family advances once, and a client disabled at a is pushed to b.
func works(t *testing.T, a, b *state.Handles, tag string) {
	t.Helper()
	ctx := context.Background()
	if err := a.Storage.Store(ctx, prefix+"/keys.json", []byte("keys "+tag)); err != nil {
		t.Fatalf("%s: store: %v", tag, err)
	}
	if v, err := b.Storage.Load(ctx, prefix+"/keys.json"); err != nil || string(v) != "keys "+tag {
		t.Fatalf("%s: load = %q, %v", tag, v, err)
	}
	if err := a.Revocations.Revoke(ctx, "jti-"+tag, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("%s: revoke: %v", tag, err)
	}
	eventually(t, tag+": the revocation pushed to the other handle", func() bool { return b.Revocations.IsRevoked("jti-" + tag) })
	err := b.Families.Update(ctx, "fam-"+tag, func(rec state.Family, found bool) (state.Family, bool, error) {
		return state.Family{ClientID: "c", Generation: 1, Expires: time.Now().Add(time.Hour)}, !found, nil
	})
	if err != nil {
		t.Fatalf("%s: family update: %v", tag, err)
	}
	if rec, found, err := a.Families.Load(ctx, "fam-"+tag); err != nil || !found || rec.Generation != 1 {
		t.Fatalf("%s: family = %+v, %v, %v", tag, rec, found, err)
	}
	setDisabled(t, a.Clients, "client-"+tag, true)
	eventually(t, tag+": the client change pushed to the other handle", func() bool {
		rec, ok := b.Clients.Get("client-" + tag)
		return ok && rec.Disabled
	})
}

// TestSentinel runs the state through Sentinels (master_name and the
// Sentinels' addresses), then has them promote the replica: after a brief
// unavailability every operation works on the new master, and what was
// stored before is still there.
func TestSentinel(t *testing.T) {
	ss := testredis.StartSentinels(t, 2)
	cfg := func() Redis {
		return Redis{Addresses: ss.Addrs(), MasterName: ss.Name,
			Timeout: caddy.Duration(300 * time.Millisecond), DialTimeout: caddy.Duration(300 * time.Millisecond)}
	}
	a, b := open(t, cfg()), open(t, cfg())
	eventually(t, "both subscribed on the master", func() bool { return subscribers(t, ss.Master) == 2 })
	works(t, a, b, "before")

	ss.Failover()
	ctx := context.Background()
	start := time.Now()
	eventually(t, "a revocation stored on the promoted replica", func() bool {
		err := a.Revocations.Revoke(ctx, "after-failover", time.Now().Add(time.Minute))
		if err != nil && !errors.Is(err, state.ErrUnavailable) {
			t.Fatalf("revoke after the failover: %v (want ErrUnavailable until it works)", err)
		}
		return err == nil
	})
	t.Logf("revocations stored again %v after the failover completed", time.Since(start).Round(time.Millisecond))
	if v, err := ss.Master.Do("EXISTS " + prefixKey("rev:", "after-failover")); err != nil || v != "1" {
		t.Fatalf("the revocation is not on the new master %s: %q, %v", ss.Master.Addr(), v, err)
	}
	eventually(t, "the revocation after the failover pushed to the other handle", func() bool { return b.Revocations.IsRevoked("after-failover") })
	if !b.Revocations.IsRevoked("jti-before") {
		t.Fatal("a revocation from before the failover was forgotten")
	}
	if v, err := b.Storage.Load(ctx, prefix+"/keys.json"); err != nil || string(v) != "keys before" {
		t.Fatalf("the keys stored before the failover: %q, %v", v, err)
	}
	works(t, b, a, "after")
	eventually(t, "both subscribed on the new master", func() bool { return subscribers(t, ss.Master) == 2 })
}

// TestSentinelAuth runs the state through Sentinels that require a
// password (requirepass) or an ACL user: with sentinel_password (and
// sentinel_username) every operation works; with a wrong or missing one
// every operation fails with ErrUnavailable (the endpoints' 503), its
// error says why and holds no password, and nothing is stored.
func TestSentinelAuth(t *testing.T) {
	const secret = "s3ntinel-Secret"
	for _, opts := range []testredis.SentinelOptions{{Password: secret}, {User: "watcher", Password: secret}} {
		t.Run("user="+opts.User, func(t *testing.T) {
			ss := testredis.StartSentinelsWith(t, 2, opts)
			cfg := func(user, password string) Redis {
				return Redis{Addresses: ss.Addrs(), MasterName: ss.Name, SentinelUsername: user, SentinelPassword: password,
					Timeout: caddy.Duration(300 * time.Millisecond), DialTimeout: caddy.Duration(300 * time.Millisecond)}
			}
			a, b := open(t, cfg(opts.User, opts.Password)), open(t, cfg(opts.User, opts.Password))
			works(t, a, b, "auth")

			ctx := context.Background()
			for _, bad := range []struct{ name, user, password, want string }{
				{"wrong password", opts.User, "not-" + secret, "WRONGPASS"},
				{"no password", "", "", "NOAUTH"},
			} {
				h := open(t, cfg(bad.user, bad.password))
				err := h.Revocations.Revoke(ctx, "refused-"+bad.name, time.Now().Add(time.Minute))
				if !errors.Is(err, state.ErrUnavailable) || !strings.Contains(err.Error(), bad.want) {
					t.Fatalf("%s: revoke = %v; want ErrUnavailable naming %s", bad.name, err, bad.want)
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("%s: the error holds the password: %v", bad.name, err)
				}
				if _, err := h.Storage.Load(ctx, prefix+"/keys.json"); !errors.Is(err, state.ErrUnavailable) {
					t.Fatalf("%s: load = %v; want ErrUnavailable", bad.name, err)
				}
				t.Logf("%s: %v", bad.name, err)
			}
			if v, err := ss.Master.Do("KEYS *refused-*"); err != nil || v != "" {
				t.Fatalf("something was stored through a refused Sentinel: %q, %v", v, err)
			}
		})
	}
}

// TestPasswordRefused: a server refusing the configured password (wrong,
// or none given to a server that requires one) is unavailability, as a
// refused Sentinel password is, not a reply error: the endpoints answer
// 503 and Caddy starts.
func TestPasswordRefused(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("CONFIG SET requirepass server-Secret"); err != nil {
		t.Fatal(err)
	}
	for _, password := range []string{"not-the-server-secret", ""} {
		h := open(t, Redis{Addresses: []string{srv.Addr()}, Password: password})
		err := h.Revocations.Revoke(context.Background(), "x", time.Now().Add(time.Minute))
		if !errors.Is(err, state.ErrUnavailable) || strings.Contains(err.Error(), "server-Secret") {
			t.Fatalf("password %q: %v; want ErrUnavailable without the password", password, err)
		}
	}
	h := open(t, Redis{Addresses: []string{srv.Addr()}, Password: "server-Secret"})
	if err := h.Revocations.Revoke(context.Background(), "x", time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("with the password: %v", err)
	}
}

// TestTLS runs the state over TLS: with the CA file, with a client
// certificate where the server asks for one; a server whose certificate
// is not signed by the configured CA, or that asks for a client
// certificate none is given for, is refused with the TLS error named.
func TestTLS(t *testing.T) {
	ctx := context.Background()
	t.Run("ca", func(t *testing.T) {
		srv := testredis.StartWith(t, testredis.Options{TLS: true})
		cfg := Redis{Addresses: []string{srv.Addr()}, TLS: true, TLSCA: srv.TLS.CA}
		a, b := open(t, cfg), open(t, cfg)
		eventually(t, "both subscribed", func() bool { return subscribers(t, srv) == 2 })
		works(t, a, b, "tls")
	})
	t.Run("client certificate", func(t *testing.T) {
		srv := testredis.StartWith(t, testredis.Options{TLS: true, ClientAuth: true})
		cfg := Redis{Addresses: []string{srv.Addr()}, TLSCA: srv.TLS.CA, TLSCert: srv.TLS.ClientCert, TLSKey: srv.TLS.ClientKey}
		a, b := open(t, cfg), open(t, cfg)
		eventually(t, "both subscribed", func() bool { return subscribers(t, srv) == 2 })
		works(t, a, b, "mtls")

		h := open(t, Redis{Addresses: []string{srv.Addr()}, TLS: true, TLSCA: srv.TLS.CA})
		err := h.Revocations.Revoke(ctx, "x", time.Now().Add(time.Minute))
		if !errors.Is(err, state.ErrUnavailable) {
			t.Fatalf("without a client certificate: %v; want ErrUnavailable", err)
		}
	})
	t.Run("wrong ca", func(t *testing.T) {
		srv := testredis.StartWith(t, testredis.Options{TLS: true})
		other := testredis.MakeCA(t, t.TempDir(), "another CA")
		for _, cfg := range []Redis{
			{Addresses: []string{srv.Addr()}, TLSCA: other},
			{Addresses: []string{srv.Addr()}, TLS: true}, // the system's roots
		} {
			h := open(t, cfg)
			err := h.Revocations.Revoke(ctx, "x", time.Now().Add(time.Minute))
			if !errors.Is(err, state.ErrUnavailable) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Fatalf("tls_ca %q: %v; want ErrUnavailable naming the unknown authority", cfg.TLSCA, err)
			}
		}
		if v, err := srv.Do("DBSIZE"); err != nil || v != "0" {
			t.Fatalf("something was stored through a refused server: %q, %v", v, err)
		}
	})
	t.Run("config errors", func(t *testing.T) {
		srv := testredis.StartWith(t, testredis.Options{TLS: true})
		for _, tc := range []struct {
			cfg  Redis
			want string
		}{
			{Redis{TLSCA: srv.TLS.Cert + ".missing"}, "redis tls_ca"},
			{Redis{TLSCA: srv.TLS.Key}, "no certificate"},
			{Redis{TLSCert: srv.TLS.ClientCert, TLSKey: srv.TLS.Key}, "redis tls client certificate"},
		} {
			if _, err := tc.cfg.Options(caddy.NewReplacer()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: %v; want %q", tc.cfg, err, tc.want)
			}
		}
		if err := (&Redis{TLSCert: srv.TLS.ClientCert}).Validate(); err == nil {
			t.Error("a client certificate without its key was accepted")
		}
	})
}

// TestSentinelMasterCrash: the master dies; until the Sentinels have
// promoted the replica every write fails with ErrUnavailable (the
// endpoints' 503), never another error and never a success; then all
// works on the new master, with what was stored before.
func TestSentinelMasterCrash(t *testing.T) {
	ss := testredis.StartSentinels(t, 2)
	cfg := Redis{Addresses: ss.Addrs(), MasterName: ss.Name,
		Timeout: caddy.Duration(300 * time.Millisecond), DialTimeout: caddy.Duration(300 * time.Millisecond)}
	a, b := open(t, cfg), open(t, cfg)
	eventually(t, "both subscribed on the master", func() bool { return subscribers(t, ss.Master) == 2 })
	works(t, a, b, "before")
	eventually(t, "the replica has the state", func() bool {
		v, err := ss.Replica.Do("EXISTS " + prefixKey("rev:", "jti-before"))
		return err == nil && v == "1"
	})

	ctx := context.Background()
	crash := time.Now()
	stop := make(chan struct{})
	refused := make(chan int)
	go func() {
		// Writes while the Sentinels decide: each must fail as unavailable.
		n := 0
		defer func() { refused <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := a.Revocations.Revoke(ctx, fmt.Sprintf("during-%d", i), time.Now().Add(time.Minute))
			if err != nil && !errors.Is(err, state.ErrUnavailable) {
				t.Errorf("revoke while the master is down: %v; want ErrUnavailable", err)
				return
			}
			if err != nil {
				n++
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	ss.KillMaster()
	promoted := time.Since(crash)
	eventually(t, "a revocation stored on the promoted replica", func() bool {
		return a.Revocations.Revoke(ctx, "after-crash", time.Now().Add(time.Minute)) == nil
	})
	close(stop)
	n := <-refused
	t.Logf("master killed: replica promoted after %v, revocations stored again after %v (%d refused as unavailable meanwhile)",
		promoted.Round(time.Millisecond), time.Since(crash).Round(time.Millisecond), n)
	if n == 0 {
		t.Error("no write was refused while the master was down: the test proves nothing")
	}
	eventually(t, "the revocation after the crash pushed to the other handle", func() bool { return b.Revocations.IsRevoked("after-crash") })
	if v, err := b.Storage.Load(ctx, prefix+"/keys.json"); err != nil || string(v) != "keys before" {
		t.Fatalf("the keys stored before the crash: %q, %v", v, err)
	}
	works(t, b, a, "after")
}
