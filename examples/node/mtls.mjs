// Authenticates to tokengate with tls_client_auth (RFC 8705) through
// openid-client's custom fetch, which sends the client certificate, gets a
// certificate-bound token and calls a route that requires one; then shows
// the same token refused without the certificate.
//
//   ISSUER=https://localhost:9482 CLIENT_ID=node-mtls CLIENT_CERT=client.pem CLIENT_KEY=client.key \
//     SERVER_CA=root.crt node mtls.mjs
import * as client from 'openid-client'
import https from 'node:https'
import fs from 'node:fs'

const cert = fs.readFileSync(process.env.CLIENT_CERT)
const key = fs.readFileSync(process.env.CLIENT_KEY)
const ca = fs.readFileSync(process.env.SERVER_CA) // the server's CA (Caddy's internal one here)

// fetchWith is a minimal fetch over node:https with the given TLS options.
const fetchWith = (tlsOptions) => (url, options = {}) => new Promise((resolve, reject) => {
  const req = https.request(url, { method: options.method ?? 'GET', headers: Object.fromEntries(new Headers(options.headers)), ca, ...tlsOptions }, (res) => {
    const chunks = []
    res.on('data', (c) => chunks.push(c))
    res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: Object.entries(res.headers).flatMap(([k, v]) => [v].flat().map((x) => [k, x])) })))
  })
  req.on('error', reject)
  if (options.body) req.write(options.body.toString())
  req.end()
})
const mtlsFetch = fetchWith({ cert, key })

const issuer = new URL(process.env.ISSUER)
const config = await client.discovery(issuer, process.env.CLIENT_ID, {}, client.TlsClientAuth(), { algorithm: 'oauth2', [client.customFetch]: mtlsFetch })
config[client.customFetch] = mtlsFetch
const tokens = await client.clientCredentialsGrant(config, { scope: process.env.SCOPE ?? 'reports:read' })
const payload = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url'))
console.log(`token_type=${tokens.token_type} cnf=${Object.keys(payload.cnf ?? {}).join(',')}`)

const api = new URL(process.env.API ?? new URL('/mtls/daily', issuer).href)
const res = await client.fetchProtectedResource(config, tokens.access_token, api, 'GET')
console.log(`${res.status} ${await res.text()}`)
if (res.status !== 200) process.exit(1)

const stolen = await fetchWith({})(api, { headers: { Authorization: `Bearer ${tokens.access_token}` } })
console.log(`without the certificate: ${stolen.status}`)
if (stolen.status !== 401) process.exit(1)
