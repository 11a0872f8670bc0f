"""The shape of FHIR JSON, read once from the fhir.resources R4B models: for each model class, which JSON names
it accepts and what each one holds (a JSON primitive kind, a complex type, or a whole resource).

Validation walks the JSON with this map beside it, so it knows the type of every node without building the
(slow, value-changing) pydantic objects a second time.
"""

from __future__ import annotations

import decimal
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel

# What a JSON value must be: FHIR JSON carries booleans and numbers as JSON literals, everything else as strings
# (http://hl7.org/fhir/R4/json.html#primitive). pydantic's lax mode would accept "true" or 1 for a boolean.
Kind = Literal["boolean", "integer", "decimal", "string", "complex", "resource"]

# Python field names that are not FHIR JSON names (pydantic accepts them because of populate_by_name).
_NOT_JSON = ("fhir_comments", "resource_type")


@dataclass(frozen=True, slots=True)
class ElementSpec:
    kind: Kind
    model: type[BaseModel] | None  # the class of a complex element
    repeats: bool
    choice: str | None  # "value" for valueQuantity, valueString, ... (one of value[x])


def unwrap_annotation(annotation: Any) -> tuple[list[Any], bool]:
    """Flatten Optional / Union / List / Annotated into the leaf types, noting whether a list was seen."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return [annotation], False
    if origin in (list, typing.List):  # noqa: UP006 - the models use typing.List
        return unwrap_annotation(typing.get_args(annotation)[0])[0], True
    if origin is not None:  # Union / Optional / X | None
        leaves: list[Any] = []
        repeats = False
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            sub, sub_repeats = unwrap_annotation(arg)
            leaves += sub
            repeats = repeats or sub_repeats
        return leaves, repeats
    return [annotation], False


def _primitive_kind(leaf: Any) -> Kind:
    base = typing.get_args(leaf)[0] if typing.get_origin(leaf) is typing.Annotated else leaf
    if base is bool:
        return "boolean"
    if base is int:
        return "integer"
    if base in (decimal.Decimal, float):
        return "decimal"
    return "string"  # string, code, uri, url (AnyUrl | str), uuid, date, dateTime, instant, time, base64Binary


def _extra(field: Any) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _spec(field: Any) -> ElementSpec:
    leaves, repeats = unwrap_annotation(field.annotation)
    leaf = leaves[0]
    choice = _extra(field).get("one_of_many")
    if hasattr(leaf, "get_model_klass"):
        model = leaf.get_model_klass()
        kind: Kind = "resource" if model is Resource else "complex"
        return ElementSpec(kind, None if kind == "resource" else model, repeats, choice)
    return ElementSpec(_primitive_kind(leaf), None, repeats, choice)


@cache
def elements(model: type[BaseModel]) -> dict[str, ElementSpec]:
    """JSON name -> spec for every element the class accepts (including `_name` primitive extensions)."""
    out: dict[str, ElementSpec] = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        if alias in _NOT_JSON:
            continue
        out[alias] = _spec(field)
    return out


@cache
def choice_groups(model: type[BaseModel]) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Choice prefix -> (its JSON names, whether one is required), e.g. {"value": (("valueBoolean", ...), True)}."""
    groups: dict[str, list[str]] = {}
    required: dict[str, bool] = {}
    for name, field in model.model_fields.items():
        extra = _extra(field)
        prefix = extra.get("one_of_many")
        if prefix is not None:
            groups.setdefault(prefix, []).append(field.alias or name)
            required[prefix] = extra.get("one_of_many_required") is True
    return {prefix: (tuple(names), required[prefix]) for prefix, names in groups.items()}


@cache
def resource_model(resource_type: str) -> type[BaseModel] | None:
    """The R4B class of any resource type (contained resources may be of types we do not serve), else None."""
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None
    return model if isinstance(model, type) and issubclass(model, Resource) else None


def datatype_model(type_name: str) -> type[BaseModel]:
    """The R4B class of a datatype or resource named in a FHIR path (e.g. "Quantity", "Task")."""
    model: type[BaseModel] = get_fhir_model_class(type_name)
    return model


def resolve_path(path: str) -> tuple[type[BaseModel], str]:
    """ "Task.input.type" -> (TaskInput class, "type"): the class that holds the last element, and its JSON name."""
    head, *steps = path.split(".")
    model = datatype_model(head)
    for step in steps[:-1]:
        spec = elements(model).get(step)
        if spec is None or spec.model is None:
            raise KeyError(f"{path}: {step} is not a complex element of {model.__name__}")
        model = spec.model
    if steps[-1] not in elements(model):
        raise KeyError(f"{path}: {model.__name__} has no element {steps[-1]}")
    return model, steps[-1]
