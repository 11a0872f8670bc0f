"""Regenerate (or check) the Mermaid diagram in pathways/README.md from the shipped PlanDefinition.

python scripts/pathway_diagram.py            # print the diagram
python scripts/pathway_diagram.py --write    # rewrite the README's generated block
python scripts/pathway_diagram.py --check    # exit 1 when the README's block is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carepath.content.diagram import mermaid
from carepath.content.loader import load_pathway_files
from carepath.content.readme import replace_block

REPO = Path(__file__).resolve().parents[1]
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pathways", type=Path, default=REPO / "pathways", help="folder with the pathway files")
    parser.add_argument("--plan", default=PLAN_URL, help="canonical url of the PlanDefinition to draw")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the generated block of README.md")
    mode.add_argument("--check", action="store_true", help="fail when README.md's generated block is stale")
    args = parser.parse_args(argv)

    content = load_pathway_files(args.pathways)
    plan = next(r for r in content if r.get("url") == args.plan)
    if not (args.write or args.check):
        sys.stdout.write(mermaid(plan))
        return 0
    readme = args.pathways / "README.md"
    current = readme.read_text(encoding="utf-8")
    expected = replace_block(current, plan, content)
    if args.check:
        if current != expected:
            sys.stderr.write(f"{readme} is out of date: run python scripts/pathway_diagram.py --write\n")
            return 1
        return 0
    readme.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
