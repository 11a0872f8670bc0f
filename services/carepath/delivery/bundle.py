"""The transaction Bundle that writes carepath's CarePlans and Tasks into the hospital's FHIR server (pure).

Each resource gets carepath's identifier (`https://fhir.carepath.dev/identifier/<type>` + our id) and is sent as
a conditional update on it (`PUT Task?identifier=<system>|<id>`, R4 §3.1.0.5.1): created the first time, updated
afterwards, never duplicated. Our server's ids mean nothing there, so references between pushed resources become
conditional references on the same identifiers (R4 transaction processing resolves them); other references
(the Patient, requests) are sent as they are — the receiving server must know them (README "Hospital push").
"""

from __future__ import annotations

import uuid
from typing import Any

IDENTIFIER_BASE = "https://fhir.carepath.dev/identifier/"
PUSHED_TYPES = ("CarePlan", "Task")
_SERVER_META = ("versionId", "lastUpdated", "source")


def identifier_system(res_type: str) -> str:
    return f"{IDENTIFIER_BASE}{res_type}"


def conditional_url(res_type: str, res_id: str) -> str:
    return f"{res_type}?identifier={identifier_system(res_type)}|{res_id}"


def transaction_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(r) for r in resources]}


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    res_type, res_id = resource["resourceType"], resource["id"]
    body = {k: _rewrite(v) for k, v in resource.items() if k != "id"}
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in _SERVER_META}
    if meta:
        body["meta"] = meta
    else:
        body.pop("meta", None)
    ours = {"system": identifier_system(res_type), "value": res_id}
    body["identifier"] = [i for i in body.get("identifier") or [] if i.get("system") != ours["system"]] + [ours]
    full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, conditional_url(res_type, res_id))}"
    return {
        "fullUrl": full_url,
        "resource": body,
        "request": {"method": "PUT", "url": conditional_url(res_type, res_id)},
    }


def _rewrite(value: Any) -> Any:
    """References to pushed resources (`Task/123`) -> conditional references on carepath's identifier."""
    if isinstance(value, list):
        return [_rewrite(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _rewrite(v) for k, v in value.items()}
    reference = value.get("reference")
    if isinstance(reference, str):
        res_type, _, res_id = reference.partition("/")
        if res_type in PUSHED_TYPES and res_id and "/" not in res_id:
            out["reference"] = conditional_url(res_type, res_id)
    return out
