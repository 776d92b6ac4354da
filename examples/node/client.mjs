// Gets an access token from tokengate with openid-client (RFC 8414
// discovery, client_credentials grant) and calls a guarded route with it.
//
//   npm install
//   ISSUER=http://localhost:8381 CLIENT_ID=demo-client CLIENT_SECRET=demo-secret \
//     API=http://localhost:8381/reports/daily node client.mjs
import * as client from 'openid-client'

const issuer = new URL(process.env.ISSUER ?? 'http://localhost:8381')
const options = issuer.protocol === 'http:' ? { algorithm: 'oauth2', execute: [client.allowInsecureRequests] } : { algorithm: 'oauth2' }

const config = await client.discovery(issuer, process.env.CLIENT_ID, process.env.CLIENT_SECRET, undefined, options)
const tokens = await client.clientCredentialsGrant(config, { scope: process.env.SCOPE ?? 'reports:read' })
console.log(`token_type=${tokens.token_type} expires_in=${tokens.expires_in} scope=${tokens.scope ?? '(all)'}`)

const api = process.env.API ?? new URL('/reports/daily', issuer).href
const res = await fetch(api, { headers: { Authorization: `Bearer ${tokens.access_token}` } })
const body = await res.text()
console.log(`${res.status} ${body}`)
if (res.status !== 200) process.exit(1)
