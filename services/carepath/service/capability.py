"""The CapabilityStatement, generated from what the server really implements (R4 §3.1.0.13).

Resources come from SUPPORTED_TYPES, search parameters from the same definitions the search engine uses, and
operations from the operation registry, so the statement cannot claim what the code does not do.
"""

from __future__ import annotations

from typing import Any

from carepath import FHIR_VERSION, __version__
from carepath.canonical import BASE
from carepath.fhir.models import SUPPORTED_TYPES
from carepath.fhir.search.definitions import params_for
from carepath.service.operations import OPERATIONS

INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
                "search-type"]  # fmt: skip
_COMMON_SEARCH = ("_id", "_lastUpdated")
SUBSCRIPTION_DOC = (
    "Channel `rest-hook` (R4): criteria a search on Task or CarePlan; without `channel.payload` a POST with no body "
    "to the endpoint, with `application/fhir+json` a PUT of the resource to [endpoint]/[type]/[id]. Every "
    "notification carries the per-Subscription event number (`X-Carepath-Event-Number`) and a stable "
    "`X-Carepath-Notification-Id`; a handshake precedes `active`; `$status` and `$resend` report and re-send. "
    "Endpoint hosts must be allowed by the server; header values are write-only."
)


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "url": f"{BASE}/CapabilityStatement/carepath",
        "version": __version__,
        "name": "CarepathServer",
        "title": "carepath FHIR R4 care-pathway server",
        "status": "active",
        "date": "2026-11-29",
        "publisher": "carepath",
        "kind": "instance",
        "software": {"name": "carepath", "version": __version__},
        "implementation": {"description": "carepath FHIR R4 API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "resource": [_resource(t) for t in SUPPORTED_TYPES],
                "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
                "searchParam": [
                    {"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
                    {"name": "_lastUpdated", "type": "date",
                     "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"},
                ],
                "operation": [{"name": op.name, "definition": op.definition}
                              for op in OPERATIONS if not op.resource_types],
            }
        ],
    }  # fmt: skip


def versions_parameters() -> dict[str, Any]:
    """The answer of `$versions` (R4 CapabilityStatement-versions): the versions served, as major.minor."""
    served = FHIR_VERSION.rsplit(".", 1)[0]  # "4.0.1" -> "4.0"
    parameters = [{"name": "version", "valueCode": served}, {"name": "default", "valueCode": served}]
    return {"resourceType": "Parameters", "parameter": parameters}


def _resource(res_type: str) -> dict[str, Any]:
    params = params_for(res_type)
    entry: dict[str, Any] = {
        "type": res_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{res_type}",
        "interaction": [{"code": code} for code in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "referencePolicy": ["literal", "logical"],
        "searchInclude": sorted(f"{res_type}:{p.code}" for p in params.values() if p.type == "reference"),
        "searchRevInclude": _revincludes(res_type),
        "searchParam": [
            {"name": p.code, "definition": p.url, "type": p.type} for p in sorted(params.values(), key=lambda p: p.code)
            if p.code not in _COMMON_SEARCH
        ],
    }  # fmt: skip
    if res_type == "Subscription":
        entry["documentation"] = SUBSCRIPTION_DOC
    ops = [op for op in OPERATIONS if res_type in op.resource_types]
    if ops:
        entry["operation"] = [{"name": op.name, "definition": op.definition} for op in ops]
    return entry


def _revincludes(res_type: str) -> list[str]:
    out = []
    for other in SUPPORTED_TYPES:
        for p in params_for(other).values():
            if p.type == "reference" and (not p.target or res_type in p.target):
                out.append(f"{other}:{p.code}")
    return sorted(out)
