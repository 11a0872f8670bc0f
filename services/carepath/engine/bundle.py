"""An ApplyResult as a FHIR transaction Bundle of independent resources, ready to persist in one transaction.

Every contained resource becomes its own entry (fullUrl `urn:uuid:...`, `POST <Type>`, no id: the server
assigns it), every `#id` reference is rewritten to that urn (`#` alone, the container, to the CarePlan's), and
a Provenance names the PlanDefinition version and the inputs. Entries: CarePlan first, then the contained
resources in their order, then the Provenance. The urns are derived from the result, so the same result always
gives the same Bundle.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from carepath.engine.context import ApplyContext, ApplyResult
from carepath.engine.timing import format_instant
from carepath.jsonutil import dumps

PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _rewrite(value: Any, urns: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite(v, urns) for k, v in value.items()}
        reference = out.get("reference")
        if isinstance(reference, str) and reference.startswith("#") and reference[1:] in urns:
            out["reference"] = urns[reference[1:]]
        return out
    if isinstance(value, list):
        return [_rewrite(v, urns) for v in value]
    return value


def _entity(what: dict[str, Any]) -> dict[str, Any]:
    return {"role": "source", "what": what}


def _provenance(
    targets: list[str], plan_reference: str | None, careplan: dict[str, Any], ctx: ApplyContext,
    extra_inputs: Sequence[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    canonical = (careplan.get("instantiatesCanonical") or [None])[0]
    plan = {"reference": plan_reference} if plan_reference else {}
    entities = [_entity({**plan, **({"display": canonical} if canonical else {})}), _entity({"reference": ctx.subject})]
    if ctx.data is not None:
        data_id = ctx.data.get("id")
        count = len(ctx.data.get("entry", []))
        entities.append(
            _entity({"reference": f"Bundle/{data_id}"} if data_id else {"display": f"data Bundle ({count} resources)"})
        )
    entities += [e if "what" in e else _entity(e) for e in extra_inputs]
    agents: list[dict[str, Any]] = [{"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "assembler"}]},
                                     "who": {"display": "carepath $apply engine"}}]  # fmt: skip
    if ctx.practitioner:
        agents.append({"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
                       "who": {"reference": ctx.practitioner}})  # fmt: skip
    return {"resourceType": "Provenance", "target": [{"reference": t} for t in targets],
            "recorded": format_instant(ctx.now), "agent": agents, "entity": entities}  # fmt: skip


def to_transaction_bundle(
    result: ApplyResult,
    *,
    plan_reference: str | None,
    ctx: ApplyContext,
    extra_inputs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    # No deep copy: `_rewrite` builds every entry's dicts and lists anew, so nothing in the Bundle is shared
    # with the result (scalars are immutable); only the CarePlan's top level needs its own dict.
    careplan = {k: v for k, v in result.careplan.items() if k != "contained"}
    contained: list[dict[str, Any]] = result.careplan.get("contained", [])
    seed = hashlib.sha256(dumps(result.careplan)).hexdigest()
    urns = {"": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}"}
    urns.update(
        {str(r["id"]): f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed + '#' + str(r['id']))}" for r in contained}
    )
    resources = [(urns[""], careplan), *((urns[str(r["id"])], r) for r in contained)]
    entries = []
    for full_url, resource in resources:
        body = _rewrite({k: v for k, v in resource.items() if k != "id"}, urns)
        entries.append(
            {"fullUrl": full_url, "resource": body, "request": {"method": "POST", "url": body["resourceType"]}}
        )
    provenance = _provenance([u for u, _ in resources], plan_reference, careplan, ctx, extra_inputs)
    provenance_urn = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed + '#provenance')}"
    entries.append(
        {"fullUrl": provenance_urn, "resource": provenance, "request": {"method": "POST", "url": "Provenance"}}
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
