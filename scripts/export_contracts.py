"""Write the published contracts of the FHIR API into contracts/ from what the code really implements.

    python scripts/export_contracts.py          # rewrite the files
    python scripts/export_contracts.py --check  # exit 1 if a committed file differs (what tests/contract checks)

contracts/CapabilityStatement.json        GET /fhir/metadata as served at the default address of `carepath serve`
contracts/openapi.json                    the FastAPI app's OpenAPI document
contracts/SearchParameter-Task-*.json      our own search parameters (due-date, waits-for), as in the SearchParameter bundle
contracts/resource-types.json             the R4 resource types served, and why each other R4 type is not
(contracts/search-parameters.json is written by scripts/build_search_parameters.py, with the packaged copy)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from carepath.api.app import create_app
from carepath.fhir.models import SUPPORTED_TYPES, UNSUPPORTED_TYPES
from carepath.fhir.search.definitions import definitions
from carepath.service.capability import capability_statement
from carepath.settings import Settings

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
# The base URL the statement names (`implementation.url`): where `carepath serve` listens by default.
CONTRACT_BASE = "http://127.0.0.1:8000/fhir"
OWN_SEARCH_PARAMETERS = ("Task-due-date", "Task-waits-for")


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def own_search_parameter(sp_id: str) -> dict[str, Any]:
    return next(sp for sp in definitions() if sp["id"] == sp_id)


def contract_files() -> dict[str, str]:
    """File name in contracts/ -> its expected text."""
    files = {
        "CapabilityStatement.json": render(capability_statement(CONTRACT_BASE)),
        "openapi.json": render(create_app(Settings(load_pathways_on_start=False)).openapi()),
        "resource-types.json": render({"supported": list(SUPPORTED_TYPES), "unsupported": UNSUPPORTED_TYPES}),
    }
    for sp_id in OWN_SEARCH_PARAMETERS:
        files[f"SearchParameter-{sp_id}.json"] = render(own_search_parameter(sp_id))
    return files


def main(argv: Sequence[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    stale = []
    for name, text in contract_files().items():
        path = CONTRACTS / name
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    for name in stale:
        print(f"contracts/{name} differs from what the app generates; run scripts/export_contracts.py")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
