package redis

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile reads the `state redis` option of oauth_issuer:
//
//	state redis [<address>...] {
//		addresses    <host:port>...
//		cluster
//		master_name  <name>
//		username     <user>
//		password     <password or {env.*}/{file.*} placeholder>
//		sentinel_username <user>
//		sentinel_password <password or {env.*}/{file.*} placeholder>
//		tls          [<ca pem file>]
//		tls_client   <client certificate pem file> <its key pem file>
//		key_prefix   <prefix>
//		dial_timeout <duration>
//		timeout      <duration>
//	}
func (r *Redis) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	r.Addresses = append(r.Addresses, d.RemainingArgs()...)
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "addresses":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			r.Addresses = append(r.Addresses, args...)
		case "cluster":
			if d.NextArg() {
				return d.ArgErr()
			}
			r.Cluster = true
		case "tls":
			r.TLS = true
			if d.NextArg() {
				r.TLSCA = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "tls_client":
			if !d.Args(&r.TLSCert, &r.TLSKey) || d.NextArg() {
				return d.ArgErr()
			}
		case "master_name", "username", "password", "sentinel_username", "sentinel_password", "key_prefix":
			var v string
			if !d.Args(&v) || d.NextArg() {
				return d.ArgErr()
			}
			*map[string]*string{"master_name": &r.MasterName, "username": &r.Username, "password": &r.Password,
				"sentinel_username": &r.SentinelUsername, "sentinel_password": &r.SentinelPassword, "key_prefix": &r.KeyPrefix}[opt] = v
		case "dial_timeout", "timeout":
			var v string
			if !d.Args(&v) || d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("redis %s: %q is not a positive duration", opt, v)
			}
			*map[string]*caddy.Duration{"dial_timeout": &r.DialTimeout, "timeout": &r.Timeout}[opt] = caddy.Duration(dur)
		default:
			return d.Errf("redis: unknown option %q", opt)
		}
	}
	if err := r.Validate(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Redis)(nil)
