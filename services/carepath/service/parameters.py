"""Reading operation input: a FHIR Parameters resource (POST) or simple query parameters (GET)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from carepath import jsonutil
from carepath.errors import InvalidRequest


@dataclass
class OperationInput:
    """Each named parameter with all its values (value[x] unwrapped, or the resource)."""

    values: dict[str, list[Any]] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A digest of every parameter and value, independent of key order (identifies a retried request)."""
        return hashlib.sha256(jsonutil.dumps(self.values, sort_keys=True)).hexdigest()

    def all(self, name: str) -> list[Any]:
        return self.values.get(name, [])

    def one(self, name: str) -> Any | None:
        found = self.all(name)
        if len(found) > 1:
            raise InvalidRequest(f"Parameter {name!r} may appear only once", expression=("Parameters.parameter",))
        return found[0] if found else None

    def boolean(self, name: str, default: bool) -> bool:
        value = self.one(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidRequest(f"Parameter {name!r} must be a boolean, got {value!r}")


def from_parameters(body: dict[str, Any]) -> OperationInput:
    if body.get("resourceType") != "Parameters":
        raise InvalidRequest("An operation body must be a Parameters resource", expression=("resourceType",))
    out = OperationInput()
    params = body.get("parameter", [])
    if not isinstance(params, list):
        raise InvalidRequest("Parameters.parameter must be a list", expression=("Parameters.parameter",))
    for index, param in enumerate(params):
        if not isinstance(param, dict):
            raise InvalidRequest("A parameter must be an object", expression=(f"Parameters.parameter[{index}]",))
        name = param.get("name")
        if not isinstance(name, str):
            raise InvalidRequest("Every parameter needs a name", expression=(f"Parameters.parameter[{index}].name",))
        out.values.setdefault(name, []).append(_value(param, index))
    return out


def from_query(query: list[tuple[str, str]]) -> OperationInput:
    out = OperationInput()
    for name, value in query:
        if not name.startswith("_"):
            out.values.setdefault(name, []).append(value)
    return out


def _value(param: dict[str, Any], index: int) -> Any:
    if "resource" in param:
        return param["resource"]
    values = [v for k, v in param.items() if k.startswith("value")]
    if len(values) != 1:
        raise InvalidRequest(
            "A parameter needs exactly one value[x] or a resource", expression=(f"Parameters.parameter[{index}]",)
        )
    return values[0]


def reference_text(value: Any, name: str) -> str:
    """A subject/encounter/... given as a string ("Patient/1") or a Reference."""
    if isinstance(value, dict):
        value = value.get("reference")
    if not isinstance(value, str) or "/" not in value:
        raise InvalidRequest(f"Parameter {name!r} must be a reference like Patient/123, got {value!r}")
    return value
