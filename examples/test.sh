#!/usr/bin/env bash
# Runs the client examples against a real tokengate (CI runs this, so they
# cannot drift): builds Caddy with tokengate, serves a demo issuer and
# guarded routes on loopback, and checks that each example gets through:
# Node's openid-client (client secret, DPoP, private_key_jwt) and Debian's
# python3-authlib (private_key_jwt, run by /usr/bin/python3, the Python
# Debian's package installs for).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
work="$(mktemp -d)"
trap 'kill "$caddy_pid" 2>/dev/null || true; wait "$caddy_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

(cd "$root" && go build -o "$work/caddy" ./cmd/caddy)
# The private_key_jwt client's key pair: the public half goes into the
# config, the private half (PKCS#8 DER, base64) to the example.
node -e '
const { generateKeyPairSync } = require("node:crypto")
const fs = require("node:fs")
const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
fs.writeFileSync(process.argv[1] + "/pkj.pub.pem", publicKey.export({ type: "spki", format: "pem" }))
fs.writeFileSync(process.argv[1] + "/pkj.pkcs8", privateKey.export({ type: "pkcs8", format: "der" }).toString("base64"))
' "$work"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/py.pem" 2>/dev/null
# The mTLS client's CA and certificate (CN=node-mtls, for TLS client auth).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=example clients CA" \
	-keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=node-mtls" \
	-keyout "$work/client.key" -out "$work/client.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >"$work/client.ext"
openssl x509 -req -in "$work/client.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
	-extfile "$work/client.ext" -out "$work/client.pem" 2>/dev/null
openssl pkey -in "$work/py.pem" -pubout -out "$work/py.pub.pem"
cat > "$work/Caddyfile" <<CADDY
{
	admin off
	storage file_system $work/storage
	skip_install_trust
	oauth_issuer {
		issuer http://localhost:9481
		client node-example {
			secret node-secret
			scopes reports:read
			audience legacy-api
		}
		client node-pkj {
			public_key $work/pkj.pub.pem
			scopes reports:read
			audience legacy-api
		}
		client py-pkj {
			public_key $work/py.pub.pem
			scopes reports:read
			audience legacy-api
		}
	}
	oauth_issuer mtls {
		issuer https://localhost:9482
		client node-mtls {
			tls_client_auth_subject_dn CN=node-mtls
			scopes reports:read
		}
	}
}
https://localhost:9482 {
	tls internal {
		client_auth {
			mode verify_if_given
			trust_pool file $work/ca.pem
		}
	}
	oauth_token mtls
	handle /mtls/* {
		bearer_auth {
			issuer mtls
			require mtls
		}
		respond "bound {http.auth.user.id}"
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
	handle /dpop/* {
		bearer_auth {
			audience legacy-api
			require dpop
		}
		respond "bound {http.auth.user.id}"
	}
}
CADDY
"$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 100); do
	curl -fs http://localhost:9481/.well-known/jwks.json >/dev/null && break
	sleep 0.1
done

cd "$here/node"
npm ci --no-audit --no-fund --silent
out="$(ISSUER=http://localhost:9481 CLIENT_ID=node-example CLIENT_SECRET=node-secret node client.mjs)"
echo "$out"
grep -q '^200 hello node-example$' <<<"$out" || { echo "node example: unexpected output"; cat "$work/caddy.log"; exit 1; }
echo "node example: ok"

out="$(ISSUER=http://localhost:9481 CLIENT_ID=node-example CLIENT_SECRET=node-secret node dpop.mjs)"
echo "$out"
grep -q '^token_type=dpop$' <<<"$out" && [ "$(grep -c '^200 bound node-example$' <<<"$out")" = 2 ] &&
	grep -q '^as bearer: 401 DPoP .*error="invalid_token"' <<<"$out" || { echo "node DPoP example: unexpected output"; cat "$work/caddy.log"; exit 1; }
echo "node DPoP example: ok"

out="$(ISSUER=http://localhost:9481 CLIENT_ID=node-pkj PRIVATE_KEY_PKCS8="$(cat "$work/pkj.pkcs8")" node private-key-jwt.mjs)"
echo "$out"
grep -q '^200 hello node-pkj$' <<<"$out" || { echo "node private_key_jwt example: unexpected output"; cat "$work/caddy.log"; exit 1; }
echo "node private_key_jwt example: ok"

out="$(ISSUER=http://localhost:9481 CLIENT_ID=py-pkj PRIVATE_KEY="$work/py.pem" /usr/bin/python3 "$here/python/private_key_jwt.py")"
echo "$out"
grep -q '^200 hello py-pkj$' <<<"$out" || { echo "python authlib private_key_jwt example: unexpected output"; cat "$work/caddy.log"; exit 1; }
echo "python authlib private_key_jwt example: ok"

for _ in $(seq 100); do
	[ -f "$work/storage/pki/authorities/local/root.crt" ] && curl -fsk https://localhost:9482/.well-known/jwks.json >/dev/null && break
	sleep 0.1
done
out="$(ISSUER=https://localhost:9482 CLIENT_ID=node-mtls CLIENT_CERT="$work/client.pem" CLIENT_KEY="$work/client.key" \
	SERVER_CA="$work/storage/pki/authorities/local/root.crt" node "$here/node/mtls.mjs")"
echo "$out"
grep -q '^token_type=bearer cnf=x5t#S256$' <<<"$out" && grep -q '^200 bound node-mtls$' <<<"$out" &&
	grep -q '^without the certificate: 401$' <<<"$out" || { echo "node mTLS example: unexpected output"; cat "$work/caddy.log"; exit 1; }
echo "node mTLS example: ok"
