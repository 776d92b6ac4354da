"""Authenticates to tokengate with private_key_jwt (RFC 7523) through
Authlib, as Debian packages it (python3-authlib), then calls a guarded route.

    ISSUER=http://localhost:9481 CLIENT_ID=py-pkj PRIVATE_KEY=priv.pem \\
        /usr/bin/python3 private_key_jwt.py
"""
import os
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """PrivateKeyJWT with a 60-second assertion: Authlib's default lifetime
    is an hour, and tokengate accepts at most five minutes (an assertion is
    made for one request)."""

    def sign(self, auth, token_endpoint):
        now = int(time.time())
        return private_key_jwt_sign(
            auth.client_secret, client_id=auth.client_id, token_endpoint=token_endpoint,
            claims=self.claims, alg=self.alg, issued_at=now, expires_at=now + 60)


issuer = os.environ.get("ISSUER", "http://localhost:8381")
# RFC 8414 discovery: the token endpoint as tokengate names it.
metadata = requests.get(issuer + "/.well-known/oauth-authorization-server", timeout=10).json()
token_endpoint = metadata["token_endpoint"]
if "private_key_jwt" not in metadata["token_endpoint_auth_methods_supported"]:
    sys.exit("the issuer does not offer private_key_jwt")

with open(os.environ["PRIVATE_KEY"], "rb") as f:
    private_key = f.read()
session = OAuth2Session(
    os.environ["CLIENT_ID"],
    private_key,
    token_endpoint_auth_method=ShortLivedPrivateKeyJWT(token_endpoint),  # RS256, the key's algorithm
    scope=os.environ.get("SCOPE", "reports:read"),
)
token = session.fetch_token(token_endpoint, grant_type="client_credentials")
print(f"token_type={token['token_type']}")

api = os.environ.get("API", issuer + "/reports/daily")
res = session.get(api)  # Authorization: Bearer <token>
print(f"{res.status_code} {res.text}")
if res.status_code != 200:
    sys.exit(1)
