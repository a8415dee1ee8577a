"""The package's shape (docs/architecture.md): layers import only downwards, no cycles, small modules, and
the threat string and the adversarial-set key each built in exactly one place."""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "advshield"

# Lowest first. A module may import its own layer and those below, never one above.
LAYERS = [
    {"errors", "registry", "io", "validation", "device", "distributed", "config_file", "metrics", "report", "__init__"},
    {"data", "models", "checkpoint", "tensorfile", "defenses", "attacks", "detectors", "zoo", "user_modules"},
    {"adversarial"},
    {"experiment"},
    {"evaluation", "analysis", "training"},
    {"reproduce", "api", "scorecard"},
    {"cli", "__main__"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
MAX_LINES = 300


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(("advshield",) + (parts[:-1] if parts[-1] == "__init__" else parts))
        yield name, path


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                if hasattr(child, "lineno"):
                    lines.add(child.lineno)
    return lines


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("advshield")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("advshield"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


GRAPH = {name: _imports(path, name) for name, path in _modules()}
KNOWN = set(GRAPH)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_module_has_a_layer():
    assert {_top(m) for m in GRAPH} <= set(LAYER_OF), {_top(m) for m in GRAPH} - set(LAYER_OF)


def test_no_import_goes_to_a_higher_layer():
    upward = sorted((m, t) for m, targets in GRAPH.items() for t in targets
                    if t in KNOWN and LAYER_OF[_top(t)] > LAYER_OF[_top(m)])
    assert not upward, upward


def test_no_import_cycle_between_modules():
    edges = {m: {t for t in ts if t in KNOWN and t != m and not m.startswith(t + ".")} for m, ts in GRAPH.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, cycles


@pytest.mark.parametrize("name,path", list(_modules()))
def test_no_source_module_above_the_line_limit(name, path):
    assert len(path.read_text().splitlines()) <= MAX_LINES, f"{name} has more than {MAX_LINES} lines"


def _occurrences(pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [f"{path.relative_to(SRC)}:{i}" for _, path in _modules()
            for i, line in enumerate(path.read_text().splitlines(), 1) if rx.search(line)]


def test_the_threat_string_is_parsed_in_one_function():
    # Only Threat.parse splits "kind:substitute"; nothing else partitions on ':' or builds a ThreatModel from text.
    assert _occurrences(r'partition\(":"\)') == ["experiment/threat.py:41"] or \
        [o.split(":")[0] for o in _occurrences(r'partition\(":"\)')] == ["experiment/threat.py"]
    built = [o.split(":")[0] for o in _occurrences(r"ThreatModel\((?!\w+\))") + _occurrences(r"ThreatModel\(name\)")]
    assert set(built) <= {"experiment/threat.py", "attacks/pipeline.py", "attacks/runner.py"}, built


def test_no_threat_is_compared_as_a_string_below_the_boundary():
    compared = _occurrences(r'threat\S*\s*[!=]=\s*"(white-box|transfer|transfer-feedback|adaptive)"')
    compared += _occurrences(r'"(white-box|transfer|transfer-feedback|adaptive)"\s*[!=]=\s*\S*threat')
    assert not compared, compared


def test_adversarial_spec_is_constructed_in_one_function():
    places = [o for o in _occurrences(r"AdversarialSpec\(") if not o.startswith("adversarial.py")]
    assert [p.split(":")[0] for p in places] == ["experiment/acquire.py"], places
