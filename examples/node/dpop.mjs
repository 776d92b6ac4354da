// Gets a DPoP-bound access token from tokengate with openid-client (the
// proofs are openid-client's own) and calls a route that requires DPoP.
// Then shows that the same token, stolen and sent as a bearer token, is
// refused.
//
//   ISSUER=http://localhost:9481 CLIENT_ID=node-example CLIENT_SECRET=node-secret \
//     API=http://localhost:9481/dpop/daily node dpop.mjs
import * as client from 'openid-client'

const issuer = new URL(process.env.ISSUER ?? 'http://localhost:8381')
const options = issuer.protocol === 'http:' ? { algorithm: 'oauth2', execute: [client.allowInsecureRequests] } : { algorithm: 'oauth2' }

const config = await client.discovery(issuer, process.env.CLIENT_ID, process.env.CLIENT_SECRET, undefined, options)
const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'))
const tokens = await client.clientCredentialsGrant(config, { scope: process.env.SCOPE ?? 'reports:read' }, { DPoP: dpop })
console.log(`token_type=${tokens.token_type}`)

const api = new URL(process.env.API ?? new URL('/dpop/daily', issuer).href)
for (let i = 0; i < 2; i++) {
  // A fresh proof for each request, the same token.
  const res = await client.fetchProtectedResource(config, tokens.access_token, api, 'GET', undefined, undefined, { DPoP: dpop })
  console.log(`${res.status} ${await res.text()}`)
  if (res.status !== 200) process.exit(1)
}

const stolen = await fetch(api, { headers: { Authorization: `Bearer ${tokens.access_token}` } })
console.log(`as bearer: ${stolen.status} ${stolen.headers.get('www-authenticate')}`)
if (stolen.status !== 401) process.exit(1)
