"""The server-side DAG drawing: layers follow the longest dependency chain, parallel branches
sit side by side in one column, edges cross little, and 200 steps draw fast and stay readable."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

from tasker_host.console import dag_svg
from tasker_host.console.dag_svg import NODE_H, NODE_W, layout, render

DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


def test_layers_are_longest_paths_and_branches_share_a_column() -> None:
    placed = layout({**DIAMOND, "e": ("a", "d")})
    assert {n: p.layer for n, p in placed.items()} == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}
    assert placed["b"].x == placed["c"].x and placed["b"].y != placed["c"].y
    assert placed["a"].x < placed["b"].x < placed["d"].x < placed["e"].x


def test_every_dependency_points_right_and_no_two_boxes_overlap() -> None:
    deps = {f"s{i}": tuple(f"s{j}" for j in (i // 2, i // 3) if j < i) for i in range(60)}
    placed = layout(deps)
    for name, p in placed.items():
        assert all(placed[d].layer < p.layer for d in deps[name])
    boxes = {(p.x, p.y) for p in placed.values()}
    assert len(boxes) == len(placed)


def test_barycentre_ordering_uncrosses_two_chains() -> None:
    # declared so that a naive ordering crosses: column 1 lists y-child before x-child
    deps = {"x": (), "y": (), "y2": ("y",), "x2": ("x",)}
    placed = layout(deps)
    assert placed["x2"].row == placed["x"].row and placed["y2"].row == placed["y"].row


def test_svg_colours_steps_by_state_links_rows_and_escapes_names() -> None:
    svg = str(render({"a": (), "<b&>": ("a",)}, {"a": "complete", "<b&>": "error"}))
    root = ET.fromstring(svg)  # well-formed XML
    classes = [g.get("class") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    assert classes == ["node st-complete", "node st-error"]
    assert "&lt;b&amp;&gt;" in svg and "<b&>" not in svg
    assert 'href="#step-a"' in svg and len(root.findall("{http://www.w3.org/2000/svg}path")) == 1


def test_two_hundred_steps_render_in_well_under_a_second_and_stay_readable() -> None:
    width = 20  # 10 layers of 20 parallel steps, each depending on two of the previous layer
    deps = {}
    for layer in range(10):
        for i in range(width):
            prev = [f"l{layer - 1}_{j}" for j in (i, (i + 1) % width)] if layer else []
            deps[f"l{layer}_{i}"] = tuple(prev)
    started = time.perf_counter()
    svg = str(render(deps, {n: "pending" for n in deps}))
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    assert svg.count('<g class="node') == 200
    w, h = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', svg).groups())
    assert w >= 10 * NODE_W and h >= width * NODE_H  # boxes keep their size: labels stay legible
    assert all(len(label) <= dag_svg.MAX_LABEL for label in re.findall(r'<text x="\d+" y="\d+">([^<]*)<', svg))
