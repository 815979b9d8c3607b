"""schemathesis hooks for `.ci/fuzz` (loaded through `hooks` in .ci/schemathesis.toml)."""

import requests
import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    """A schema-valid PATCH names the record's current version in `If-Match`, as a client that
    has just read the record does. A generated version is almost always stale (412), so the
    handlers behind it would otherwise never run; stale and malformed ones still go out in the
    negative cases, and a missing one in the coverage phase."""
    headers = case.headers or {}
    meta = case.meta
    if case.method != "PATCH" or "If-Match" not in headers or meta is None or not meta.generation.mode.is_positive:
        return
    url = case.operation.schema.get_base_url().rstrip("/") + case.formatted_path
    auth = {"Authorization": headers["Authorization"]} if "Authorization" in headers else {}
    try:
        response = requests.get(url, headers=auth, timeout=10)
    except requests.RequestException:
        return
    if response.status_code == 200 and "ETag" in response.headers:
        case.headers["If-Match"] = response.headers["ETag"]
