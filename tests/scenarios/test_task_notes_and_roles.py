"""Every Task of the shipped pathway says its own reason and names a coded role (clinical spec §4.3, §5b)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carepath.content.loader import load_pathway_files
from carepath.content.samples import sample_case
from carepath.engine import ApplyContext, DictResolver, apply_plan_definition

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _tasks(key: str) -> dict[str, dict[str, Any]]:
    content = load_pathway_files(PATHWAYS)
    plan = next(r for r in content if r.get("url") == PLAN_URL)
    ctx = ApplyContext(subject=f"Patient/{key}", now=NOW, data=sample_case(key).bundle(NOW))
    careplan = apply_plan_definition(plan, DictResolver(content), ctx).careplan
    tasks = [r for r in careplan["contained"] if r["resourceType"] == "Task"]
    steps = {next(p["valueString"] for e in t["extension"] if e["url"].endswith("/generated-by")
                  for p in e["extension"] if p["url"] == "actionId"): t for t in tasks}  # fmt: skip
    return {**steps, **{f"{s}-action": a for s, a in ((a["id"], a) for a in plan["action"][0]["action"])}}


def test_each_task_note_starts_with_its_own_step_rule() -> None:
    found = _tasks("P01")
    for step in ("S16", "S17", "S18"):  # conditional steps: their own condition, not the pathway's entry rule
        own = found[f"{step}-action"]["condition"][0]["expression"]["description"].rstrip(".")
        assert found[step]["note"][0]["text"].startswith(f"Why this step: {own}. Created by pathway")
    assert found["S19"]["note"][0]["text"].startswith("Why this step: Always, once the RCP is done.")


def test_every_task_names_a_coded_role() -> None:
    found = _tasks("P08")
    tasks = {k: v for k, v in found.items() if not k.endswith("-action")}
    assert len(tasks) >= 15
    for step, task in tasks.items():
        assert any(c.get("system") and c.get("code") for r in task["performerType"] for c in r["coding"]), step
