#!/usr/bin/env python3
"""How a Python product checks an API key with tenant-registry and records what it did.

A product (or its gateway) receives a request carrying a customer's API key. It asks the
registry whether the key is good (POST /v1/internal/api-keys/verify, always 200 with
{valid: true, ...} or {valid: false, code}), serves the request if so, and appends an audit
event (POST /v1/audit) so the tenant can see it in their audit log.

Standard library only:

    REGISTRY_URL=https://tenant-registry REGISTRY_TOKEN=$TOKEN python3 verify.py bp_...

Environment:
    REGISTRY_URL      the registry's base URL (default http://localhost:8090)
    REGISTRY_TOKEN    the product's service token: an OIDC access token from the client-credentials
                      grant of its Keycloak client (role `service`); optional against a dev
                      registry with authentication off. Get one with, e.g.:
                        curl -s -d grant_type=client_credentials -d client_id=billing \\
                          -d client_secret=$SECRET $KEYCLOAK_ISSUER/protocol/openid-connect/token
                      and reuse it until shortly before it expires.
    REGISTRY_API_KEY  the API key to check, when not given as the first argument
    REGISTRY_PRODUCT  the product being called (optional; defaults to the key's own product)

Prints `verify: valid ...` and `audit: appended event_id=...`, exit 0; `verify: invalid CODE`,
exit 1, for a key that must be refused; `error: ...`, exit 2, when the registry cannot answer.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

REGISTRY_URL = os.environ.get("REGISTRY_URL", "http://localhost:8090").rstrip("/")
REGISTRY_TOKEN = os.environ.get("REGISTRY_TOKEN", "")
TIMEOUT_S = 5


class RegistryError(Exception):
    pass


def call(method, path, body=None, headers=None, attempts=3):
    """One JSON request; retries a 503 (honouring Retry-After) and network errors a few times."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    all_headers = {"Accept": "application/json"}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    if REGISTRY_TOKEN:
        all_headers["Authorization"] = "Bearer " + REGISTRY_TOKEN
    all_headers.update(headers or {})
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(REGISTRY_URL + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                answer = json.loads(payload)
            except ValueError:
                answer = {"code": "HTTP_%d" % err.code, "message": payload[:200].decode("utf-8", "replace")}
            if err.code == 503 and attempt < attempts:
                time.sleep(min(float(err.headers.get("Retry-After") or 1), 5))
                continue
            return err.code, answer
        except (urllib.error.URLError, OSError) as err:
            if attempt < attempts:
                time.sleep(0.5 * attempt)
                continue
            raise RegistryError("cannot reach %s: %s" % (REGISTRY_URL, getattr(err, "reason", err)))
    raise RegistryError("unreachable")


def verify(key, product=None):
    body = {"key": key}
    if product:
        body["product"] = product
    status, answer = call("POST", "/v1/internal/api-keys/verify", body)
    if status != 200:
        # 401/403: this product's own credentials; 503: try again shortly. Never "valid".
        raise RegistryError("verify answered %d: %s" % (status, answer.get("message", answer)))
    return answer


def append_audit(result, client):
    event = {
        "tenant_id": result["tenant_id"],
        "action": "api.request",
        "crud": "r",
        "actor": {"id": result["key_id"], "type": "api_key"},
        "description": "request served with an API key",
        "fields": {"client": client},
    }
    if result.get("product"):
        event["product"] = result["product"]
    # The same Idempotency-Key on a retry of this append never records the event twice.
    status, answer = call("POST", "/v1/audit", event, headers={"Idempotency-Key": str(uuid.uuid4())})
    if status != 201:
        raise RegistryError("audit append answered %d: %s" % (status, answer.get("message", answer)))
    return answer


def main(argv):
    key = argv[1] if len(argv) > 1 else os.environ.get("REGISTRY_API_KEY", "")
    if not key:
        print("usage: verify.py API_KEY (or set REGISTRY_API_KEY)", file=sys.stderr)
        return 2
    try:
        result = verify(key, os.environ.get("REGISTRY_PRODUCT") or None)
        if not result.get("valid"):
            print("verify: invalid %s" % result.get("code"))
            return 1
        print(
            "verify: valid key_id=%s tenant_id=%s tenant=%s product=%s scopes=%s expires_at=%s"
            % (
                result["key_id"],
                result["tenant_id"],
                result["tenant_slug"],
                result.get("product") or "-",
                ",".join(result.get("scopes") or []) or "-",
                result.get("expires_at") or "never",
            )
        )
        event = append_audit(result, "python-example")
        print("audit: appended event_id=%s action=%s" % (event["id"], event["action"]))
        return 0
    except RegistryError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
