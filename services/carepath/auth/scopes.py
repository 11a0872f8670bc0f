"""SMART App Launch scopes, v1 (`patient/Observation.read`) and v2 (`patient/Observation.rs`), as grants.

A grant is (context, resource type or "*", interaction letter). v2 letters: c create; r read, vread, instance
history; u update, patch; d delete; s search, type and system history. v1 `.read` = rs, `.write` = cud,
`.*` = cruds. v2 granular scopes with a query (`patient/Observation.rs?category=laboratory`) are not supported:
they grant nothing, so a client never gets more than it asked for. Unknown or malformed scopes grant nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Context = Literal["patient", "user", "system"]
Letter = Literal["c", "r", "u", "d", "s"]

_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.([A-Za-z*]+)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_V2 = re.compile(r"^c?r?u?d?s?$")  # the letters, each at most once and in the order of the spec


@dataclass(frozen=True)
class Grant:
    context: Context
    res_type: str  # a resource type or "*"
    letter: Letter


def parse_scopes(text: str) -> frozenset[Grant]:
    """The grants of a space-separated scope string (the token's `scope` claim)."""
    grants: set[Grant] = set()
    for scope in text.split():
        match = _SCOPE.match(scope)  # a `?query` suffix never matches: granular scopes grant nothing
        if match is None:
            continue
        context, res_type, permissions = match.groups()
        letters = _V1.get(permissions)
        if letters is None:
            if not permissions or not _V2.match(permissions):
                continue
            letters = permissions
        grants.update(Grant(context, res_type, letter) for letter in letters)  # type: ignore[arg-type]
    return frozenset(grants)


def scope_text(grants: frozenset[Grant]) -> str:
    """The grants as v2 scopes, one letter each: `parse_scopes(scope_text(g)) == g` (what a session keeps)."""
    return " ".join(sorted(f"{g.context}/{g.res_type}.{g.letter}" for g in grants))
