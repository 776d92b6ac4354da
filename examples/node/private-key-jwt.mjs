// Authenticates to tokengate with private_key_jwt (RFC 7523): openid-client
// signs the client assertion with the client's private key, whose public
// half tokengate has in its config (public_key). Then calls a guarded
// route.
//
//   ISSUER=http://localhost:9481 CLIENT_ID=node-pkj PRIVATE_KEY_PKCS8=<base64 DER> \
//     node private-key-jwt.mjs
import * as client from 'openid-client'

const issuer = new URL(process.env.ISSUER ?? 'http://localhost:8381')
const options = issuer.protocol === 'http:' ? { algorithm: 'oauth2', execute: [client.allowInsecureRequests] } : { algorithm: 'oauth2' }

const der = Buffer.from(process.env.PRIVATE_KEY_PKCS8, 'base64')
const key = await crypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
const config = await client.discovery(issuer, process.env.CLIENT_ID, {}, client.PrivateKeyJwt(key), options)
const tokens = await client.clientCredentialsGrant(config, { scope: process.env.SCOPE ?? 'reports:read' })
console.log(`token_type=${tokens.token_type}`)

const api = process.env.API ?? new URL('/reports/daily', issuer).href
const res = await fetch(api, { headers: { Authorization: `Bearer ${tokens.access_token}` } })
console.log(`${res.status} ${await res.text()}`)
if (res.status !== 200) process.exit(1)
