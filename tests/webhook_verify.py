"""Independent check of a webhook request the service sent (tests/api/webhooks.rs), written as a
partner system would: Python's own hmac, not the service's code.

Reads JSON from stdin: the endpoint's secret, the request's `Renkei-Signature` header and its
body (base64). Verifies `v1` = HMAC-SHA256(secret, "<t>.<body>") in constant time and that `t` is
within five minutes of this clock (a replayed request carries an old one). Prints JSON with the
verified body and `t`; exits non-zero on any failure.
"""
import base64
import hashlib
import hmac
import json
import sys
import time

TOLERANCE_SECS = 300

request = json.load(sys.stdin)
body = base64.b64decode(request["body"])
fields = dict(part.split("=", 1) for part in request["signature"].split(","))
t = int(fields["t"])
expected = hmac.new(request["secret"].encode("utf-8"), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
if not hmac.compare_digest(expected, fields["v1"]):
    sys.exit("the signature does not verify")
if abs(time.time() - t) > TOLERANCE_SECS:
    sys.exit("the timestamp is outside the tolerance")
print(json.dumps({"t": t, "body": json.loads(body)}))
