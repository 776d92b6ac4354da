#!/usr/bin/env bash
# Runs client.mjs against a real tokengate (CI runs this, so the example
# cannot drift): builds Caddy with tokengate, serves a demo issuer and a
# guarded route on loopback, and checks the example gets through.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'kill "$caddy_pid" 2>/dev/null || true; wait "$caddy_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

(cd "$root" && go build -o "$work/caddy" ./cmd/caddy)
cat > "$work/Caddyfile" <<CADDY
{
	admin off
	storage file_system $work/storage
	oauth_issuer {
		issuer http://localhost:9481
		client node-example {
			secret node-secret
			scopes reports:read
			audience legacy-api
		}
	}
}
:9481 {
	oauth_token
	handle /reports/* {
		bearer_auth {
			audience legacy-api
			scopes reports:read
		}
		respond "hello {http.auth.user.id}"
	}
}
CADDY
"$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 100); do
	curl -fs http://localhost:9481/.well-known/jwks.json >/dev/null && break
	sleep 0.1
done

cd "$here"
npm ci --no-audit --no-fund --silent
out="$(ISSUER=http://localhost:9481 CLIENT_ID=node-example CLIENT_SECRET=node-secret node client.mjs)"
echo "$out"
grep -q '^200 hello node-example$' <<<"$out" || { echo "node example: unexpected output"; cat "$work/caddy.log"; exit 1; }
echo "node example: ok"
