"""Expression evaluation for `$apply`: languages, context variables, named variables, per-apply memo.

Context variables (FHIRPath `%name`): `%subject` and `%patient` (the subject resource from `data` if present,
else a stub `{"resourceType", "id"}`), `%context` (the definition being applied, as cqframework's clinical-reasoning
binds it: the PlanDefinition for its own and its actions' expressions, the ActivityDefinition for its own
dynamicValues; a nested PlanDefinition for its actions), `%data` (the data Bundle), `%encounter`, `%practitioner`,
`%organization` (from `data` or stubs), `%now` (a FHIRPath DateTime: `%now + 3 days` works; `now()` and `today()`
return the same frozen instant), `%userType`, `%userLanguage`, `%userTaskContext`, `%setting`,
`%settingContext`, `%resource` (the resource being built, for dynamicValue) and every entry of the `parameters`
Parameters resource by name (value[x] unwrapped, a resource parameter as the resource).

Named variables (the R4 `variable` extension, on the PlanDefinition and on actions) are evaluated lazily, the
first time an expression mentions them, and may use only the variables declared before them. **A variable whose
name matches a supplied parameter takes the supplied value instead**: that is how a pathway exposes a
configurable threshold (declare `%ecogMax` with its default expression; a caller overrides it by passing a
parameter `ecogMax`).

Only `text/fhirpath` is evaluated; CQL and any other language is refused with NotSupported naming the element.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from fhirpathpy.engine.nodes import FP_Type, ResourceNode

from carepath.engine.context import ApplyContext
from carepath.engine.timing import format_instant
from carepath.errors import BusinessRuleViolation, NotSupported
from carepath.fhir.fhirpath import FhirPathError, evaluate, now_value, reference_stub
from carepath.jsonutil import dumps

VARIABLE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/variable"
FHIRPATH = "text/fhirpath"
_NAME_RE = re.compile(r"%(?:([A-Za-z_][A-Za-z0-9_]*)|`([^`]+)`)")
# Expressions that read the resource being built change result as it changes: never memoised.
_UNCACHEABLE = frozenset({"resource"})


@lru_cache(maxsize=4096)
def referenced_names(expression: str) -> frozenset[str]:
    return frozenset(a or b for a, b in _NAME_RE.findall(expression))


def expression_text(expression: Mapping[str, Any], where: str) -> str:
    """The FHIRPath text of an R4 Expression, or NotSupported for CQL, a library reference or another language."""
    language = expression.get("language")
    text = expression.get("expression")
    if language != FHIRPATH:
        raise NotSupported(f"Expression language {language!r} is not supported (only {FHIRPATH})", expression=(where,))
    if not isinstance(text, str) or not text.strip():
        raise NotSupported("An expression without inline FHIRPath text is not supported", expression=(where,))
    return text


_EXPRESSION_KEYS = frozenset({"expression", "valueExpression", "condition"})  # Expression-valued elements


def refuse_unsupported(definition: Mapping[str, Any], path: str) -> None:
    """NotSupported naming the element, for any expression not in FHIRPath or any `library`, wherever it is.

    Checked before anything is applied, over the whole definition (contained ones included): a CQL expression
    in an action that does not apply, or in an action without a definition, must not be silently ignored, and a
    `library` is what CQL logic lives in.
    """
    if _only_fhirpath(definition):
        return
    for where, value in _elements(definition, path):
        if where.rpartition(".")[2].startswith("library") and isinstance(value, str):
            raise NotSupported(f"Libraries ({value!r}) are not supported: only inline {FHIRPATH} expressions",
                               expression=(where,))  # fmt: skip
        if isinstance(value, Mapping) and where.rpartition(".")[2].split("[")[0] in _EXPRESSION_KEYS:
            language = value.get("language")
            if isinstance(language, str) and language != FHIRPATH:
                raise NotSupported(f"Expression language {language!r} is not supported (only {FHIRPATH})",
                                   expression=(where,))  # fmt: skip


_LANGUAGE = re.compile(rb'"language":"((?:[^"\\]|\\.)*)"')


def _only_fhirpath(definition: Mapping[str, Any]) -> bool:
    """The common case, decided on the serialised JSON (C speed, once per definition and apply): no `library`
    key and every `language` FHIRPath. Anything else gets the element walk, which names the element."""
    text = dumps(definition)
    return b'"library"' not in text and all(m == FHIRPATH.encode() for m in _LANGUAGE.findall(text))


def _elements(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(FHIRPath-style path, value) of every element below `value`, depth first."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}"
            if isinstance(item, list):
                for i, element in enumerate(item):
                    yield f"{where}[{i}]", element
                    yield from _elements(element, f"{where}[{i}]")
            else:
                yield where, item
                yield from _elements(item, where)


def _typed(value: Any, type_name: str) -> Any:
    """Complex values as typed nodes so that FHIRPath sees e.g. a Quantity, not a plain object."""
    return ResourceNode.create_node(value, type_name) if isinstance(value, dict) else value  # type: ignore[no-untyped-call]


def parameter_values(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters.parameter by name: value[x] unwrapped, resource as itself; a repeated name becomes a list."""
    out: dict[str, Any] = {}
    for param in (parameters or {}).get("parameter", []):
        name = param.get("name")
        if not isinstance(name, str):
            continue
        value: Any = param.get("resource")
        for key, raw in param.items():
            if key.startswith("value"):
                value = _typed(raw, key[5:])
        if name in out:
            prior = out[name]
            out[name] = [*(prior if isinstance(prior, list) else [prior]), value]
        else:
            out[name] = value
    return out


def _index_bundle(data: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """`Type/id` and fullUrl -> resource, for `resolve()` and the subject look-up (built once per apply)."""
    index: dict[str, dict[str, Any]] = {}
    for entry in (data or {}).get("entry", []):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        if resource.get("id"):
            index[f"{resource.get('resourceType')}/{resource['id']}"] = resource
        if isinstance(entry.get("fullUrl"), str):
            index[entry["fullUrl"]] = resource
    return index


def to_fhir_value(item: Any) -> Any:
    """A FHIRPath result item as JSON: DateTime/Time/Quantity objects become their FHIR representation."""
    if isinstance(item, ResourceNode):
        return item.data
    if isinstance(item, FP_Type):
        unit = getattr(item, "unit", None)
        if unit is not None and hasattr(item, "value"):
            return {"value": item.value, "unit": unit.strip("'")}
        return _instant_text(str(item))
    return _instant_text(item) if isinstance(item, str) else item


_FULL_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _instant_text(text: str) -> str:
    """A full date-time in the form the engine writes everywhere else (UTC, whole seconds), so a due date set by
    a dynamicValue (`%now + 3 days`) reads like one computed from timing; partial dates and other text stay."""
    if not _FULL_INSTANT.fullmatch(text):
        return text
    try:
        return format_instant(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:  # shaped like an instant but no such date (30 February): left for validation to name
        return text


@dataclass
class Evaluator:
    """One apply's expression evaluation: base variables, a `resolve()` index and a memo of pure results."""

    ctx: ApplyContext
    base: dict[str, Any] = field(init=False)
    supplied: dict[str, Any] = field(init=False)
    subject_resource: dict[str, Any] = field(init=False)
    _index: dict[str, dict[str, Any]] = field(init=False)
    _memo: dict[tuple[Any, ...], tuple[list[Any], tuple[Any, ...]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        ctx = self.ctx
        self._index = _index_bundle(ctx.data)
        self.subject_resource = self.find(ctx.subject) or {}
        self.supplied = parameter_values(ctx.parameters)
        self.base = {
            "subject": self.subject_resource, "patient": self.subject_resource,
            "data": ctx.data, "now": now_value(ctx.now),
            "encounter": self.find(ctx.encounter), "practitioner": self.find(ctx.practitioner),
            "organization": self.find(ctx.organization),
            "userType": ctx.user_type, "userLanguage": ctx.user_language, "userTaskContext": ctx.user_task_context,
            "setting": ctx.setting, "settingContext": ctx.setting_context,
            **self.supplied,
        }  # fmt: skip

    def find(self, reference: str | None) -> dict[str, Any] | None:
        """The resource from the data Bundle, else a stub built from the reference."""
        if reference is None:
            return None
        return self._index.get(reference) or reference_stub(reference)

    def _lookup(self, reference: str) -> dict[str, Any] | None:
        return self._index.get(reference)

    def run(self, text: str, variables: Mapping[str, Any], where: str) -> list[Any]:
        """Evaluate with the subject as focus; results of expressions not reading %resource are memoised. Each
        evaluation (not a memo hit) is charged to the context's time budget, checked before it starts."""
        names = referenced_names(text)
        used = tuple((n, variables.get(n)) for n in sorted(names))
        key: tuple[Any, ...] | None = None
        if not names & _UNCACHEABLE:
            key = (text, *((n, id(v)) for n, v in used))
            hit = self._memo.get(key)
            if hit is not None:
                return hit[0]
        budget = self.ctx.budget
        try:
            with budget.spend(where) if budget is not None else nullcontext():
                result = evaluate(self.subject_resource, text, variables, self._lookup, self.ctx.now)
        except FhirPathError as exc:
            raise BusinessRuleViolation(str(exc), expression=(where,)) from exc
        if key is not None:
            self._memo[key] = (result, used)  # `used` keeps the values alive, so their ids stay unique
        return result

    def condition_holds(self, text: str, variables: Mapping[str, Any], where: str) -> bool:
        """Applicability: true only for a single `true`; empty or non-boolean results are false."""
        return self.run(text, variables, where) == [True]


_MISSING = object()


@dataclass
class Scope:
    """Named variables of one element (PlanDefinition or action), on top of the enclosing scope.

    Values are computed on first use; each variable sees only base variables, enclosing scopes and the variables
    declared before it, so declaration order decides and a variable can never depend on itself.
    """

    evaluator: Evaluator
    parent: Scope | None
    declared: list[tuple[str, Mapping[str, Any], str]]  # (name, Expression, element path), in declaration order
    definition: Mapping[str, Any] | None = None  # the PlanDefinition / ActivityDefinition being applied: %context
    _values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, evaluator: Evaluator, parent: Scope | None, element: Mapping[str, Any], path: str) -> Scope:
        """The scope of `element`; a definition (it has a resourceType, an action has not) is also `%context`."""
        definition = element if "resourceType" in element else None
        declared: list[tuple[str, Mapping[str, Any], str]] = []
        for i, ext in enumerate(element.get("extension", [])):
            if ext.get("url") != VARIABLE_EXTENSION:
                continue
            where = f"{path}.extension[{i}]"
            value = ext.get("valueExpression") or {}
            if not isinstance(value.get("name"), str):
                raise BusinessRuleViolation("A variable extension needs valueExpression.name", expression=(where,))
            declared.append((value["name"], value, where))
        if not declared and parent is not None and definition is None:
            return parent  # nothing new in scope: share the parent's computed values
        return cls(evaluator, parent, declared, definition)

    def _context(self) -> Mapping[str, Any] | None:
        return self.definition if self.definition is not None or self.parent is None else self.parent._context()

    def _get(self, name: str, limit: int) -> Any:
        for i, (declared_name, expression, where) in enumerate(self.declared[:limit]):
            if declared_name != name:
                continue
            if name not in self._values:
                text = expression_text(expression, where)
                result = self.evaluator.run(text, self.variables_for(text, limit=i), where)
                self._values[name] = result[0] if len(result) == 1 else result
            return self._values[name]
        if self.parent is not None:
            return self.parent._get(name, len(self.parent.declared))
        return self.evaluator.base.get(name, _MISSING)

    def variables_for(
        self, text: str, extra: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """The variables `text` mentions; supplied parameters win over declared variables of the same name."""
        out: dict[str, Any] = dict(extra or {})
        supplied = self.evaluator.supplied
        names = referenced_names(text)
        definition = self._context() if "context" in names and "context" not in {*out, *supplied} else None
        if definition is not None:
            out["context"] = definition
        for name in names:
            if name in out:
                continue
            value = (
                supplied[name] if name in supplied else self._get(name, len(self.declared) if limit is None else limit)
            )
            if value is not _MISSING:
                out[name] = value
        return out

    def holds(self, expression: Mapping[str, Any], where: str) -> bool:
        text = expression_text(expression, where)
        return self.evaluator.condition_holds(text, self.variables_for(text), where)

    def values(self, expression: Mapping[str, Any], where: str, resource: dict[str, Any]) -> list[Any]:
        """A dynamicValue's result, with `%resource` = the resource being built."""
        text = expression_text(expression, where)
        result = self.evaluator.run(text, self.variables_for(text, {"resource": resource}), where)
        return [to_fhir_value(item) for item in result]
