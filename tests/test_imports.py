"""Imports go down the stack (DESIGN.md, Layout): every `import` in fwpipe/, read with ast.

Four floors:
    top     fwpipe.cli (and fwpipe.__main__): may import anything; nothing imports it
    stages  fwpipe.pipeline, .audit, .train: may import the layer and the ground floor, never
            another stage (stages talk through the dataset directory)
    layer   fwpipe.diagnosis: the one owner of the causes of a stall, which audit, train and
            diagnose all use; takes plain numbers, imports only the ground floor
    ground  everything else (fwpipe/*.py, dedup, executors, dataset, sample): imports no stage

Every import counts: at module level, inside a function (the lazy imports that keep `fwpipe
--help` fast and torch optional) and under `if TYPE_CHECKING:`. A second check finds import
cycles between modules: `from fwpipe.a import b` is an edge to the module fwpipe.a.b if there is
one, else to the package fwpipe.a (its __init__).
"""

from __future__ import annotations

import ast
from pathlib import Path

import fwpipe

ROOT = Path(fwpipe.__file__).parent
STAGES = ("pipeline", "audit", "train")
LAYERS = ("diagnosis",)
TOP = ("cli", "__main__")

# Cycles allowed to exist: none (structure part 1 removed the last two: executor <-> raycluster,
# finalize <-> prepare). An entry that no longer exists fails the test. Nothing may be added here.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def module_names() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("fwpipe", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_names()


def imports_of(name: str, path: Path) -> set[str]:
    """The fwpipe modules that module `name` imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:  # `import fwpipe.a.b.C`: the deepest module named
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def floor(name: str) -> tuple[str, str | None]:
    """("top" | "stage" | "ground", the stage's name or None)."""
    parts = name.split(".")
    sub = parts[1] if len(parts) > 1 else None
    if sub in TOP:
        return "top", None
    if sub in STAGES:
        return "stage", sub
    if sub in LAYERS:
        return "layer", sub
    return "ground", None


def test_the_graph_is_read():
    """The parser finds what is plainly there (a test that could pass on an empty graph proves nothing)."""
    assert {"fwpipe.cli", "fwpipe.pipeline.prepare", "fwpipe.audit.run", "fwpipe.train.loop", "fwpipe.budget"} <= set(
        MODULES
    )
    assert "fwpipe.errors" in GRAPH["fwpipe.budget"]
    assert "fwpipe.pipeline.estimate" in GRAPH["fwpipe.cli.prepare"]  # lazy, inside the command
    assert "fwpipe.cli.common" in GRAPH["fwpipe.cli.audit"]
    assert "fwpipe.train" in GRAPH["fwpipe.train.device"]  # `from fwpipe.train import require_torch`: the package
    assert "fwpipe.diagnosis.trend" in GRAPH["fwpipe.train.plan"] and floor("fwpipe.diagnosis.causes") == (
        "layer",
        "diagnosis",
    )


def test_no_stage_imports_another_and_the_ground_floor_imports_no_stage():
    wrong = []
    for name, targets in GRAPH.items():
        kind, stage = floor(name)
        for t in sorted(targets):
            t_kind, t_stage = floor(t)
            if t_kind == "top" and kind != "top":
                wrong.append(f"{name} -> {t} (nothing below the CLI imports it)")
            elif kind == "ground" and t_kind in ("stage", "layer"):
                wrong.append(f"{name} -> {t} (the ground floor imports no stage and not the diagnosis)")
            elif kind == "layer" and t_kind == "stage":
                wrong.append(f"{name} -> {t} (the diagnosis takes plain numbers and imports no stage)")
            elif kind == "stage" and t_kind == "stage" and t_stage != stage:
                wrong.append(f"{name} -> {t} (a stage imports no other stage)")
    assert not wrong, "imports that go up or across:\n" + "\n".join(wrong)


def test_the_ground_floor_files_import_no_package_above_them():
    """fwpipe/*.py (shards, tokenizer, kernels, budget, ...) sit under every package: none of
    them imports dataset/, executors/, dedup/, quality/ or diagnosis/ (docs/layout.md's floor plan)."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"sample", "assets", "configs"}
    assert {"dataset", "executors", "dedup", "quality", "diagnosis", "pipeline"} <= packages
    wrong = [
        f"{name} -> {t}"
        for name, targets in GRAPH.items()
        if name.count(".") == 1 and MODULES[name].parent == ROOT and floor(name)[0] != "top"
        for t in sorted(targets)
        if t.split(".")[1] in packages
    ]
    assert not wrong, "ground-floor files importing a package:\n" + "\n".join(wrong)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = {tuple(c) for c in cycles(GRAPH)}
    new = found - KNOWN_CYCLES
    assert not new, "import cycles: " + "; ".join(" <-> ".join(c) for c in sorted(new))
    gone = KNOWN_CYCLES - found
    assert not gone, f"these cycles are gone: delete them from KNOWN_CYCLES: {sorted(gone)}"
