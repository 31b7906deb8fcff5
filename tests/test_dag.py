"""Pure graph functions of tasker_host.dag."""

from __future__ import annotations

import pytest

from tasker_host import dag

CHAIN = {"validate": [], "charge": ["validate"], "record": ["charge"], "notify": ["record"]}


def test_find_cycle_returns_none_for_a_dag() -> None:
    assert dag.find_cycle(CHAIN) is None
    assert dag.find_cycle({}) is None
    assert dag.find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_find_cycle_returns_the_closed_path() -> None:
    assert dag.find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert dag.find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]


def test_find_cycle_reports_only_the_cycle_not_the_path_leading_to_it() -> None:
    deps = {"start": ["x"], "x": ["y"], "y": ["z"], "z": ["x"]}
    assert dag.find_cycle(deps) == ["x", "y", "z", "x"]


def test_find_cycle_self_dependency() -> None:
    assert dag.find_cycle({"a": [], "b": ["b"]}) == ["b", "b"]


def test_find_cycle_ignores_names_that_are_only_dependencies() -> None:
    assert dag.find_cycle({"a": ["ghost"], "b": ["a"]}) is None


def test_find_cycle_handles_long_chains_without_recursion() -> None:
    deps = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(5000)}
    assert dag.find_cycle(deps) is None
    deps["s0"] = ["s4999"]
    cycle = dag.find_cycle(deps)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) == 5001


def test_topological_order_keeps_a_valid_declaration_order() -> None:
    assert dag.topological_order(CHAIN) == ["validate", "charge", "record", "notify"]
    independent = {"c": [], "a": [], "b": []}
    assert dag.topological_order(independent) == ["c", "a", "b"]


def test_topological_order_moves_dependencies_first_and_breaks_ties_by_declaration() -> None:
    deps = {"notify": ["charge"], "charge": ["validate"], "audit": [], "validate": []}
    assert dag.topological_order(deps) == ["audit", "validate", "charge", "notify"]


def test_topological_order_diamond_and_duplicate_edges() -> None:
    deps = {"d": ["b", "c", "b"], "b": ["a"], "c": ["a"], "a": []}
    assert dag.topological_order(deps) == ["a", "b", "c", "d"]


def test_topological_order_includes_dependency_only_names() -> None:
    assert dag.topological_order({"b": ["a"]}) == ["a", "b"]


def test_topological_order_raises_on_cycle() -> None:
    with pytest.raises(dag.CycleError) as info:
        dag.topological_order({"a": ["b"], "b": ["a"], "c": []})
    assert info.value.cycle == ["a", "b", "a"]
    assert "a -> b -> a" in str(info.value)


def test_roots() -> None:
    assert dag.roots(CHAIN) == ["validate"]
    assert dag.roots({"b": [], "a": ["b"], "c": []}) == ["b", "c"]
    assert dag.roots({"b": ["a"]}) == ["a"]


def test_dependents() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a", "b", "a"], "d": []}
    assert dag.dependents(deps) == {"a": ["b", "c"], "b": ["c"], "c": [], "d": []}


def test_functions_do_not_mutate_their_input() -> None:
    deps = {"b": ["a"], "a": []}
    snapshot = {k: list(v) for k, v in deps.items()}
    dag.find_cycle(deps), dag.topological_order(deps), dag.roots(deps), dag.dependents(deps)
    assert deps == snapshot
