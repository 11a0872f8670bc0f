"""The state of one `$apply` run: inputs, the expression evaluator, issues found, and local id allocation."""

from __future__ import annotations

from dataclasses import dataclass, field

from carepath.engine.checks import WriteLog
from carepath.engine.context import ApplyContext, DefinitionResolver
from carepath.engine.expressions import Evaluator
from carepath.errors import Issue, Severity


@dataclass
class Run:
    ctx: ApplyContext
    resolver: DefinitionResolver
    evaluator: Evaluator = field(init=False)
    issues: list[Issue] = field(default_factory=list)
    writes: WriteLog = field(default_factory=WriteLog)  # which dynamicValue wrote what, to name it in errors
    _counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(self.ctx)

    def new_id(self, resource_type: str) -> str:
        """Readable ids unique within the CarePlan (`task-3`), also when one definition is used twice."""
        prefix = resource_type.lower()
        self._counters[prefix] = self._counters.get(prefix, 0) + 1
        return f"{prefix}-{self._counters[prefix]}"

    def note(self, diagnostics: str, where: str, severity: Severity = "information") -> None:
        code = "informational" if severity == "information" else "business-rule"
        self.issues.append(Issue(diagnostics, code, severity, (where,)))
