"""The FHIRPath evaluation time budget of one `$apply` (issue 13's limit), with a fake clock: time is an input."""

from __future__ import annotations

import itertools

import pytest
from engine_support import activity, apply, condition, plan

from carepath.engine import EvaluationBudget
from carepath.errors import TooCostly

TASK = activity("follow-up")


def _fake_clock(step_s: float) -> EvaluationBudget:
    """A budget of 1 s on a clock that advances `step_s` per call (each evaluation reads it twice)."""
    ticks = itertools.count()
    return EvaluationBudget(1000, lambda: next(ticks) * step_s)


def _plan(conditions: int) -> dict:
    actions = [{"id": f"a{i}", "title": f"A{i}", "definitionCanonical": TASK["url"],
                "condition": [condition(f"{i} = {i}")]} for i in range(conditions)]  # fmt: skip
    return plan(*actions)


def test_evaluation_stops_before_the_first_expression_over_the_limit_naming_it() -> None:
    budget = _fake_clock(0.4)  # each evaluation "takes" 0.4 s: two fit in 1 s (0.8 s), the third starts after
    with pytest.raises(TooCostly) as refused:
        apply(_plan(5), [TASK], budget=budget)
    assert refused.value.status == 422
    [issue] = refused.value.issues()
    assert issue.code == "too-costly"
    assert issue.expression == ("PlanDefinition.action[3].condition[0]",)
    assert "1000 ms" in issue.diagnostics and "PlanDefinition.action[3]" in issue.diagnostics
    assert budget.spent_s == pytest.approx(1.2)  # three evaluations done, the fourth refused


def test_within_the_limit_the_result_is_unchanged() -> None:
    unlimited = apply(_plan(5), [TASK])
    assert apply(_plan(5), [TASK], budget=_fake_clock(0.01)).careplan == unlimited.careplan
