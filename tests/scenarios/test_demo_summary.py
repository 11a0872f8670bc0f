"""The demo's per-patient text: what a coordinator reads for P08 (many urgent tasks) and negative case (a)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from carepath.content.loader import load_pathway_files
from carepath.content.samples import sample_case
from carepath.content.summary import render_summary, summarise
from carepath.engine import ApplyContext, DictResolver, apply_plan_definition

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _render(key: str) -> str:
    content = load_pathway_files(PATHWAYS)
    plan = next(r for r in content if r["resourceType"] == "PlanDefinition")
    case = sample_case(key)
    ctx = ApplyContext(subject=f"Patient/{key}", now=NOW, data=case.bundle(NOW), persist=True)  # as the demo does
    result = apply_plan_definition(plan, DictResolver(content), ctx)
    return render_summary(f"{case.key} {case.title}", result.applicable, summarise(result, plan))


def test_p08_summary_shows_priority_due_date_reason_and_holds() -> None:
    text = _render("P08")
    lines = text.splitlines()
    assert lines[0] == "P08 Severe pain 8/10 and 10 % weight loss"
    assert lines[1].startswith("  Pathway started because: Progression, or a cancer treatment stopped")
    assert lines[2] == "  16 tasks, 8 urgent:"
    rcp = next(i for i, line in enumerate(lines) if line.lstrip().startswith("S05"))
    assert "URGENT" in lines[rcp] and "due 2025-03-08" in lines[rcp]  # urgent: the next weekly RCP, T0 + 7 d
    assert lines[rcp + 1].strip() == "ServiceRequest: tumor-board-review Multidisciplinary tumour board (RCP) review"
    assert lines[rcp + 2].strip() == "priority: urgent when the latest pain score is 7/10 or more"
    assert lines[rcp + 3].strip() == "waits for: S02, S04 (this task's status: draft)"
    pain = next(i for i, line in enumerate(lines) if line.lstrip().startswith("S07b"))
    assert lines[pain + 2].strip() == "why: The latest pain score is 7/10 or more."


def test_a_patient_outside_the_pathway_gets_one_plain_sentence() -> None:
    assert _render("NA").splitlines()[1] == "  The pathway does not apply: nothing is created."
