"""`_include` / `_revinclude` values: `SourceType:param[:TargetType]` (search spec 3.1.1.5.4).

`_include=Task:owner` adds the resources the matched Tasks' `owner` points at; `_revinclude=Provenance:target`
adds the Provenances whose `target` points at the matched resources. Wildcards and `:iterate` are not supported.
"""

from __future__ import annotations

from dataclasses import dataclass

from carepath.errors import InvalidRequest
from carepath.fhir.models import is_supported
from carepath.fhir.search.definitions import params_for


@dataclass(frozen=True)
class IncludeSpec:
    source_type: str  # the type whose reference parameter is followed
    param: str
    target_type: str | None = None


def parse_include(resource_type: str, raw: str, *, reverse: bool) -> IncludeSpec:
    name = "_revinclude" if reverse else "_include"
    parts = raw.split(":")
    if len(parts) not in (2, 3) or "*" in parts:
        raise InvalidRequest(f"{name}={raw!r}: expected SourceType:parameter[:TargetType] (wildcards not supported)")
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not is_supported(source):
        raise InvalidRequest(f"{name}={raw!r}: unknown resource type {source!r}")
    if not reverse and source != resource_type:
        raise InvalidRequest(f"_include={raw!r}: the source type must be the searched type {resource_type}")
    param = params_for(source).get(code)
    if param is None or param.type != "reference":
        raise InvalidRequest(f"{name}={raw!r}: {code!r} is not a reference parameter of {source}")
    if target is not None and param.target and target not in param.target:
        raise InvalidRequest(f"{name}={raw!r}: {target} is not a target type of {source}.{code}")
    if reverse and (target or resource_type) not in param.target and param.target:
        raise InvalidRequest(f"_revinclude={raw!r}: {source}.{code} cannot point at {target or resource_type}")
    return IncludeSpec(source, code, target)
