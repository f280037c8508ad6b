"""The package's parts import downwards only, so none can be read without the ones below it.

`LAYERS` lists LoopTool's packages and top-level modules from the bottom up; a part may import
only parts listed before it (or itself). Every import counts, the lazy ones inside functions too,
since they make the same dependency. docs/ARCHITECTURE.md draws the same order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import looptool

LAYERS = (
    # Plain data and rules, no I/O: the data model, the one matcher, texts for people, benchmark names.
    "errors", "schema", "calls", "display", "categories", "stats", "concurrency", "prompts",
    # Settings.
    "config", "presets", "config_doc",
    # The policy's weights and prompt; the store; model serving (which model answers for round R).
    "embedded", "policy", "store", "checkpoint", "serving",
    # Method stage 0: tools, agents, seed dialogues and samples.
    "tools_sim", "agents", "seed",
    # Training and evaluation, then the loop (stages 1-4) that drives them.
    "training", "eval", "loop",
    # What reads a workspace's results, then the commands that run everything.
    "report", "experiment_report", "review", "export", "experiment", "demo",
    # The front ends.
    "tui", "cli",
)
ROOT = Path(looptool.__file__).parent


def part_of(module: str) -> str | None:
    """"looptool.loop.graph" -> "loop"; "looptool.config" -> "config"; other packages -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "looptool" and len(parts) > 1 else None


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every looptool module that the code `source` of `module` imports, at the top or inside a function."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}  # `from looptool import store`
    return {m for m in found if m.startswith("looptool.")}


def package_imports() -> dict[tuple[str, str], str]:
    """(importing part, imported part) -> one file where it happens, for every import between parts."""
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        source = part_of(module)
        if source is None:
            continue
        imported = imported_modules(path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py")
        for target in map(part_of, imported):
            if target is not None and target != source:
                edges.setdefault((source, target), str(path.relative_to(ROOT.parent)))
    return edges


def upward(edges: dict[tuple[str, str], str]) -> list[str]:
    """The imports that point up the layers (any cycle between parts has at least one)."""
    rank = {part: i for i, part in enumerate(LAYERS)}
    return [f"{where}: {source} imports {target}" for (source, target), where in sorted(edges.items())
            if rank.get(target, -1) > rank.get(source, len(LAYERS))]


def test_every_part_is_in_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").is_file())}
    assert parts == set(LAYERS), f"not in LAYERS: {sorted(parts - set(LAYERS))}; gone: {sorted(set(LAYERS) - parts)}"


def test_imports_point_down_only():
    found = upward(package_imports())
    assert not found, "imports that point up (or round a cycle):\n" + "\n".join(found)


def test_the_scan_sees_lazy_relative_and_package_imports():
    source = """
from . import base
from ..schema import Sample
from looptool import loop


def later():
    from looptool.eval.runner import run_suite
"""
    found = imported_modules(source, "looptool.store.samples")
    assert {"looptool.store.base", "looptool.schema", "looptool.loop", "looptool.eval.runner"} <= found
    assert upward({("store", "loop"): "looptool/store/samples.py", ("loop", "store"): "looptool/loop/graph.py"}) == [
        "looptool/store/samples.py: store imports loop"]
