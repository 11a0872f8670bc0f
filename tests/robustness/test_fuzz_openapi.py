"""A bounded schemathesis run against a real uvicorn server on PostgreSQL (issue 8): cases generated from the
OpenAPI document (which declares bodies, parameters and responses), NUL bytes allowed, fixed seed.

Asserts zero 5xx and that every error is an OperationOutcome. Bounded: EXAMPLES cases per operation and
generation mode (positive: as declared; negative: violating the declarations). Deselect it in the quick dev
loop with `-m "not fuzz"`; CI runs it (CAREPATH_REQUIRE_SERVICES=1 makes a missing PostgreSQL a failure).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from tests.live_server import serve_in_thread

from carepath.api.app import create_app
from carepath.settings import Settings

EXAMPLES = 60
pytestmark = [pytest.mark.fuzz, pytest.mark.postgres]


@pytest.fixture
def served(postgres_settings: Settings) -> Iterator[tuple[str, dict[str, object]]]:
    """uvicorn on this test's PostgreSQL schema; its base URL and OpenAPI document."""
    app = create_app(postgres_settings.model_copy(update={"base_url": ""}))
    with serve_in_thread(app) as url:
        yield url, app.openapi()


def _check(case: Case, base_url: str, failures: list[str]) -> None:
    response = case.call(base_url=base_url, timeout=30)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    if response.status_code >= 500:
        failures.append(f"{where}: {response.text[:300]} (curl: {case.as_curl_command()[:300]})")
    elif response.status_code >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
            failures.append(f"{where}: error body is not an OperationOutcome: {response.text[:200]}")


def test_no_generated_request_gets_a_5xx_and_every_error_is_an_operation_outcome(
    served: tuple[str, dict[str, object]],
) -> None:
    base_url, document = served
    schema = schemathesis.openapi.from_dict(document)
    schema.config.generation.update(allow_x00=True, codec="utf-8")
    failures: list[str] = []
    cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def run(case: Case) -> None:
                nonlocal cases
                cases += 1
                _check(case, base_url, failures)

            try:
                run()
            except Unsatisfiable:  # nothing declared can be violated (e.g. only optional string parameters)
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no positive case"
    print(f"schemathesis: {cases} cases")
    assert cases > 0 and not failures, f"{len(failures)} failures:\n" + "\n".join(sorted(set(failures))[:20])
