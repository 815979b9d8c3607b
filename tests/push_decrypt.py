"""Independent check of a Web Push request the service sent (tests/api/push.rs).

Reads JSON from stdin: the subscription's private key (the 32-byte P-256 scalar, base64url), its
auth secret (base64url), the request's body (base64) and its Authorization header. Decrypts the
body with the `http_ece` package (RFC 8188/8291, aes128gcm) and verifies the VAPID JWT
(RFC 8292: ES256 over the key in `k=`) with `cryptography`. Prints JSON: the plaintext and the
token's claims. Exits non-zero on any failure.
"""
import base64
import json
import sys

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


request = json.load(sys.stdin)
private = ec.derive_private_key(int.from_bytes(b64url(request["private_key"]), "big"), ec.SECP256R1())
plaintext = http_ece.decrypt(
    base64.b64decode(request["body"]),
    private_key=private,
    auth_secret=b64url(request["auth"]),
    version="aes128gcm",
)

scheme, _, params = request["authorization"].partition(" ")
assert scheme == "vapid", scheme
fields = dict(p.strip().split("=", 1) for p in params.split(","))
header_b64, claims_b64, signature_b64 = fields["t"].split(".")
header = json.loads(b64url(header_b64))
assert header["alg"] == "ES256", header
public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url(fields["k"]))
raw = b64url(signature_b64)
assert len(raw) == 64, len(raw)
signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
try:
    public.verify(signature, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
except InvalidSignature:
    sys.exit("the VAPID signature does not verify")

print(json.dumps({"plaintext": plaintext.decode("utf-8"), "claims": json.loads(b64url(claims_b64)), "k": fields["k"]}))
