"""R4 invariants (constraints written in FHIRPath in the spec) that the `fhir.resources` models do not check,
for the resource types `$apply` generates: CarePlan, RequestGroup, Task, ServiceRequest, CommunicationRequest,
MedicationRequest, Goal (and their contained resources).

Checked here, on the JSON, with the element's path in each issue:
- ele-1  every element has a value or children (no `{}`, `[]` or `""`)
- ext-1  an extension has either nested extensions or a value[x], not both, not neither
- ref-1  a local reference (`#id`) names a contained resource of the container (`#` alone is the container)
- dom-3  every contained resource is referenced from the container, or refers to it
- per-1  a Period's start is not after its end
- rqg-1  a RequestGroup action has a `resource` or sub-`action`s, not both
- cpl-3  a CarePlan activity has a `reference` or a `detail`, not both
- gol-1  a Goal target with detail[x] has a `measure`
- prr-1  a ServiceRequest has `orderDetail` only with a `code`
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dateutil.parser import isoparse

from carepath.errors import Issue
from carepath.jsonutil import dumps


def invariant_issues(resource: dict[str, Any]) -> list[Issue]:
    """Every invariant violation of `resource` and of the resources it contains, each naming the element."""
    root = str(resource.get("resourceType"))
    # The common case (nothing wrong) is decided by one quick pass that builds no paths; only a resource that
    # fails it gets the walk that names each element.
    issues = [] if _clean(resource) else [*_element_issues(resource, root), *_local_reference_issues(resource, root)]
    contained = resource.get("contained")
    for i, inner in enumerate(contained if isinstance(contained, list) else []):
        if isinstance(inner, dict):
            issues += _type_issues(inner, f"{root}.contained[{i}]")
    return issues + _type_issues(resource, root)


def _issue(path: str, key: str, text: str) -> Issue:
    return Issue(f"{key}: {text}", "invariant", "error", (path,))


def _element_issues(value: Any, path: str) -> Iterator[Issue]:
    """ele-1, ext-1 and per-1 everywhere below `value`."""
    if value in ({}, [], ""):
        yield _issue(path, "ele-1", "an element must have a value or children")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _element_issues(item, f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("url"), str) and path.rpartition(".")[2].split("[")[0] in (
        "extension",
        "modifierExtension",
    ):
        has_value = any(key.startswith("value") for key in value)
        if has_value == ("extension" in value):
            yield _issue(path, "ext-1", "an extension has either extensions or a value[x], not both, not neither")
    if (
        isinstance(value.get("start"), str)
        and isinstance(value.get("end"), str)
        and _after(value["start"], value["end"])
    ):
        yield _issue(path, "per-1", f"the start {value['start']} is after the end {value['end']}")
    for key, item in value.items():
        yield from _element_issues(item, f"{path}.{key}")


def _clean(resource: dict[str, Any]) -> bool:
    """True when ele-1, ext-1, per-1, ref-1 and dom-3 certainly hold (False: look closer).

    Empty objects, arrays and strings are looked for in the serialised JSON (`""` there is always an empty
    string; `{}` or `[]` inside a string only costs the closer look); the rest in one iterative pass."""
    text = dumps(resource)
    if b'""' in text or b"{}" in text or b"[]" in text:
        return False
    local: set[str] = set()
    to_container: set[int] = set()
    contained = resource.get("contained") or []
    for i, inner in enumerate(contained):
        inner_refs: set[str] = set()
        if not _clean_tree(inner, inner_refs):
            return False
        if "#" in inner_refs:
            to_container.add(i)
        local |= inner_refs
    if not _clean_tree({k: v for k, v in resource.items() if k != "contained"}, local):
        return False
    ids = {f"#{r.get('id')}" for r in contained if isinstance(r, dict)}
    referenced = local - {"#"}
    return referenced <= ids and all(
        f"#{r.get('id')}" in referenced or i in to_container for i, r in enumerate(contained)
    )


_EXTENSIONS = ("extension", "modifierExtension")
_NOT_VALUES = ("id", "url", "extension")


def _clean_tree(root: dict[str, Any], refs: set[str]) -> bool:
    """ext-1 and per-1 over every object below `root`, collecting local references (no recursion, no paths)."""
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        value, in_extension = stack.pop()
        if type(value) is list:
            stack.extend((item, in_extension) for item in value if type(item) is dict or type(item) is list)
            continue
        if in_extension and ("extension" in value) == (len(value) > sum(k in value for k in _NOT_VALUES)):
            return False  # value[x] is whatever an extension holds besides id, url and extension
        if "start" in value and "end" in value and not _ordered(value["start"], value["end"]):
            return False
        reference = value.get("reference")
        if type(reference) is str and reference.startswith("#"):
            refs.add(reference)
        for key, item in value.items():
            if type(item) is dict or type(item) is list:
                stack.append((item, key in _EXTENSIONS))
    return True


def _ordered(start: Any, end: Any) -> bool:
    """Certainly start <= end: same format and offset (what the engine writes), compared as text."""
    if type(start) is not str or type(end) is not str:
        return True  # not a Period (or not valid: the models report it)
    return len(start) == len(end) and (len(start) <= 10 or start[-6:] == end[-6:]) and start <= end


def _after(start: str, end: str) -> bool:
    try:
        return bool(isoparse(start) > isoparse(end))
    except (ValueError, TypeError, OverflowError):
        return False  # a date and a dateTime with and without zone: the models check the formats


def _references(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield path, value["reference"]
        for key, item in value.items():
            yield from _references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _references(item, f"{path}[{i}]")


def _local_reference_issues(resource: dict[str, Any], root: str) -> Iterator[Issue]:
    """ref-1 and dom-3 (http://hl7.org/fhir/R4/references.html#contained)."""
    contained = [r for r in resource.get("contained") or [] if isinstance(r, dict)]
    ids = {f"#{r.get('id')}" for r in contained}
    referenced: set[str] = set()
    for where, reference in _references(resource, root):
        if reference.startswith("#") and reference != "#":
            referenced.add(reference)
            if reference not in ids:
                yield _issue(where, "ref-1", f"{reference} names no contained resource")
    for i, inner in enumerate(contained):
        own = f"#{inner.get('id')}"
        refers_to_container = any(ref == "#" for _, ref in _references(inner, ""))
        if own not in referenced and not refers_to_container:
            yield _issue(f"{root}.contained[{i}]", "dom-3", f"contained resource {own} is referenced from nowhere")


def _type_issues(resource: dict[str, Any], path: str) -> list[Issue]:
    check = _BY_TYPE.get(str(resource.get("resourceType")))
    return list(check(resource, path)) if check else []


def _request_group(resource: dict[str, Any], path: str) -> Iterator[Issue]:
    def actions(items: Any, where: str) -> Iterator[Issue]:
        for i, action in enumerate(items if isinstance(items, list) else []):
            at = f"{where}.action[{i}]"
            if isinstance(action, dict):
                if ("resource" in action) == ("action" in action):
                    yield _issue(at, "rqg-1", "an action has a resource or sub-actions, not both, not neither")
                yield from actions(action.get("action"), at)

    yield from actions(resource.get("action"), path)


def _care_plan(resource: dict[str, Any], path: str) -> Iterator[Issue]:
    for i, activity in enumerate(resource.get("activity") or []):
        if isinstance(activity, dict) and "reference" in activity and "detail" in activity:
            yield _issue(f"{path}.activity[{i}]", "cpl-3", "an activity has a reference or a detail, not both")


def _goal(resource: dict[str, Any], path: str) -> Iterator[Issue]:
    for i, target in enumerate(resource.get("target") or []):
        if isinstance(target, dict) and any(k.startswith("detail") for k in target) and "measure" not in target:
            yield _issue(f"{path}.target[{i}]", "gol-1", "a target with detail[x] needs a measure")


def _service_request(resource: dict[str, Any], path: str) -> Iterator[Issue]:
    if "orderDetail" in resource and "code" not in resource:
        yield _issue(f"{path}.orderDetail", "prr-1", "orderDetail needs a code")


_BY_TYPE = {"RequestGroup": _request_group, "CarePlan": _care_plan, "Goal": _goal, "ServiceRequest": _service_request}
