"""Pure graph functions over step names and their dependencies. No I/O.

A graph is a mapping ``step -> the steps it depends on``, in declaration order, e.g.
``{"validate": [], "charge": ["validate"], "notify": ["charge"]}``. A name that only appears as a
dependency is treated as a step without dependencies, declared after every key. Every result is
deterministic and follows declaration order wherever the graph leaves a choice.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

Deps = Mapping[str, Sequence[str]]


class CycleError(ValueError):
    """The graph has a dependency cycle; ``cycle`` is its path, e.g. ``['a', 'b', 'a']``."""

    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


def nodes(deps: Deps) -> list[str]:
    """Every step name: the keys in order, then names only used as dependencies."""
    seen = dict.fromkeys(deps)
    for targets in deps.values():
        for target in targets:
            seen.setdefault(target)
    return list(seen)


def find_cycle(deps: Deps) -> list[str] | None:
    """Return the first dependency cycle as a closed path (``['a', 'b', 'a']``), else ``None``.

    A step depending on itself is the cycle ``['a', 'a']``.
    """
    done: set[str] = set()
    for start in deps:
        if start not in done:
            cycle = _cycle_from(deps, start, done)
            if cycle is not None:
                return cycle
    return None


def _cycle_from(deps: Deps, start: str, done: set[str]) -> list[str] | None:
    """Iterative depth-first search from ``start``; marks finished nodes in ``done``."""
    path: list[str] = [start]
    on_path: dict[str, int] = {start: 0}
    stack = [iter(deps.get(start, ()))]
    while stack:
        target = next(stack[-1], None)
        if target is None:
            stack.pop()
            finished = path.pop()
            del on_path[finished]
            done.add(finished)
        elif target in on_path:
            return path[on_path[target] :] + [target]
        elif target not in done:
            on_path[target] = len(path)
            path.append(target)
            stack.append(iter(deps.get(target, ())))
    return None


def topological_order(deps: Deps) -> list[str]:
    """Order steps so every step comes after its dependencies.

    Among steps that are ready at the same time the earliest declared wins, so a graph whose
    declaration order is already valid comes back unchanged. Raises :class:`CycleError`.
    """
    order = nodes(deps)
    index = {name: i for i, name in enumerate(order)}
    waiting = {name: len(set(deps.get(name, ()))) for name in order}
    users = dependents(deps)
    ready = [index[name] for name in order if waiting[name] == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        name = order[heapq.heappop(ready)]
        result.append(name)
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, index[user])
    if len(result) != len(order):
        raise CycleError(find_cycle(deps) or [])
    return result


def roots(deps: Deps) -> list[str]:
    """Steps without dependencies, in declaration order."""
    return [name for name in nodes(deps) if not deps.get(name)]


def dependents(deps: Deps) -> dict[str, list[str]]:
    """Reverse edges: for every step, the steps that depend on it (declaration order, unique)."""
    result: dict[str, list[str]] = {name: [] for name in nodes(deps)}
    for name, targets in deps.items():
        for target in dict.fromkeys(targets):
            result[target].append(name)
    return result
