"""Dependency order: a deterministic topological sort that reports cycles by their members."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from carepath.errors import BusinessRuleViolation

K = TypeVar("K", bound=Hashable)


def _cycle_members(remaining: set[K], deps: Mapping[K, set[K]]) -> set[K]:
    """Drop nodes that merely wait on a cycle (nothing left depends on them) until only cycle members remain."""
    members = set(remaining)
    while True:
        needed = {d for n in members for d in deps[n] if d in members}
        if needed == members:
            return members
        members = needed


def dependency_order(nodes: Sequence[K], depends_on: Mapping[K, Sequence[K]], describe: Callable[[K], str]) -> list[K]:
    """Nodes ordered so that each comes after everything it depends on; ties keep the input order (Kahn).

    A cycle is a content error (422) naming every action on it, so the author can see which relatedAction to fix.
    """
    position = {node: i for i, node in enumerate(nodes)}
    deps = {node: {d for d in depends_on.get(node, ()) if d in position} for node in nodes}
    dependents: dict[K, list[K]] = {node: [] for node in nodes}
    for node, ds in deps.items():
        for d in ds:
            dependents[d].append(node)
    waiting = {node: len(ds) for node, ds in deps.items()}
    ready = [position[n] for n in nodes if waiting[n] == 0]
    heapq.heapify(ready)
    order: list[K] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for dependent in dependents[node]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, position[dependent])
    if len(order) < len(nodes):
        members = _cycle_members(set(nodes) - set(order), deps)
        paths = tuple(describe(n) for n in nodes if n in members)
        raise BusinessRuleViolation(f"Dependency cycle between actions: {', '.join(paths)}", expression=paths)
    return order
