"""What `$apply` needs: read on its definitions, read + search on Patient and on every type its expressions
and data requirements use (its output reflects those records), and with persist=true create on what it stores.

The types are derived conservatively from the definitions: every `dataRequirement.type`, and every resource type
named in an expression; an expression that reads `%data`/`%context` without naming a type could see anything,
so it needs every patient-compartment type. If the definitions cannot be loaded here, the same conservative
answer applies (the service will then answer the error itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from carepath.auth.access import APPLY_PERSISTED_TYPES, Access, Need
from carepath.auth.compartment import COMPARTMENT_PARAMS
from carepath.engine import DictResolver
from carepath.errors import CarepathError
from carepath.fhir.models import SUPPORTED_TYPES
from carepath.service.apply_definitions import plan_from_inputs, stored_definitions
from carepath.service.parameters import OperationInput
from carepath.store.repository import Repository

_WORD = re.compile(r"[A-Z][A-Za-z]+")
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")  # a FHIRPath string literal
_OPEN_DATA = re.compile(r"%(data|context)\b")
_SUPPORTED = frozenset(SUPPORTED_TYPES)
_ALL_PATIENT_DATA = frozenset(COMPARTMENT_PARAMS)


def data_types(root: dict[str, Any], resolver: DictResolver | None) -> frozenset[str]:
    """The resource types of patient data the definitions (and those they refer to) may read."""
    types: set[str] = set()
    for resource in _definitions(root, resolver):
        for node in _nodes(resource):
            requirement = node.get("dataRequirement")
            for req in requirement if isinstance(requirement, list) else []:
                if isinstance(req, dict) and isinstance(req.get("type"), str):
                    types.add(req["type"])
            expression = node.get("expression")
            if isinstance(expression, str) and node.get("language", "text/fhirpath").startswith("text/fhirpath"):
                named = _named_types(expression)
                if _OPEN_DATA.search(expression) and not named:
                    return _ALL_PATIENT_DATA
                types |= named
            elif isinstance(expression, str):  # CQL and other languages: we cannot read them, assume anything
                return _ALL_PATIENT_DATA
    return frozenset(t for t in types if t in _SUPPORTED)


def _named_types(expression: str) -> set[str]:
    """Types named in code (`Observation.value`, `ofType(Condition)`) or as a whole string literal
    (`resourceType = 'Observation'`); a type inside a longer literal — an extension URL's
    `.../StructureDefinition/...` — reads nothing."""
    literals = _LITERAL.findall(expression)
    code = _LITERAL.sub("''", expression)
    return {w for w in _WORD.findall(code) if w in _SUPPORTED} | {lit for lit in literals if lit in _SUPPORTED}


def _definitions(root: dict[str, Any], resolver: DictResolver | None) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    pending = [root]
    while pending:
        resource = pending.pop()
        yield resource
        for node in _nodes(resource):
            canonical = node.get("definitionCanonical")
            if resolver is None or not isinstance(canonical, str) or canonical in seen:
                continue
            seen.add(canonical)
            found = resolver.resolve(canonical)
            if found is not None:
                pending.append(found)


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


async def apply_needs(repository: Repository, access: Access, inputs: OperationInput | None) -> list[Need]:
    assert access.res_type is not None
    types: frozenset[str] = _ALL_PATIENT_DATA
    persist = False
    if inputs is not None:
        try:
            persist = inputs.boolean("persist", False)
            async with repository.reader() as tx:
                if access.res_id is not None:
                    definitions = await stored_definitions(repository, tx, access.res_type, access.res_id)
                else:
                    definitions = await plan_from_inputs(tx, inputs)
            types = data_types(definitions.root, definitions.resolver)
        except CarepathError:
            pass  # the service answers this error itself; until then assume the widest needs
    needs = [Need(access.res_type, "r")]
    needs += [Need(t, letter) for t in sorted({"Patient", *types}) for letter in ("r", "s")]
    if persist or inputs is None:
        needs += [Need(t, "c") for t in APPLY_PERSISTED_TYPES]
    return needs


def subjects(inputs: OperationInput | None) -> list[str]:
    if inputs is None:
        return []
    out = []
    for value in inputs.all("subject"):
        if isinstance(value, dict):
            value = value.get("reference")
        if isinstance(value, str):
            out.append(value)
    return out
