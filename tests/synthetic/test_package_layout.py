"""Layout of pyflowreg.synthetic: its public names, and modules that depend on one another
only through public names and without cycles."""

import ast
from pathlib import Path

import pytest

import pyflowreg.synthetic as synthetic

PACKAGE = Path(synthetic.__file__).parent
MODULES = {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}

# What the generator offers to its users: sessions, recordings, image pairs, writers, the
# benchmark models, their motion and traces, and the real frames behind the real models.
PUBLIC = {
    "SyntheticRecording", "SyntheticSession", "make_image_pair", "make_session",
    "write_recording", "write_session", "write_demo_session", "BenchmarkRecording",
    "make_benchmark_recording", "load_real_frames", "BENCHMARK_MODELS", "MEAN_BRIGHTNESS",
    "REAL_RECORDINGS", "LocalField", "MotionField", "breathing_trace", "drift_trace",
    "jitter_trace", "local_field", "smooth_modes",
}


def sibling(module: str | None, name: str | None = None) -> str | None:
    """The module of this package that ``from module import name`` / ``import module`` reads."""
    if module is None or not (module == "pyflowreg.synthetic"
                              or module.startswith("pyflowreg.synthetic.")):
        return None
    if module == "pyflowreg.synthetic":
        return name if name in MODULES else "__init__"
    return module.rsplit(".", 1)[1]


def parsed(stem: str) -> ast.Module:
    return ast.parse(MODULES[stem].read_text(), filename=str(MODULES[stem]))


def imports(stem: str) -> list[tuple[str, str | None]]:
    """(sibling module, imported name or None) of every import of the package in a module."""
    found = []
    for node in ast.walk(parsed(stem)):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{stem}: relative import"
            for alias in node.names:
                target = sibling(node.module, alias.name)
                if target is not None:
                    found.append((target, alias.name))
        elif isinstance(node, ast.Import):
            found += [(sibling(a.name), None) for a in node.names if sibling(a.name)]
    return found


def test_public_api_is_exported():
    assert set(synthetic.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(synthetic, name) is not None


@pytest.mark.parametrize("stem", sorted(MODULES))
def test_every_module_says_what_it_is_for(stem):
    doc = ast.get_docstring(parsed(stem))
    assert doc and doc.splitlines()[0].strip().endswith(".")


@pytest.mark.parametrize("stem", sorted(MODULES))
def test_no_private_name_crosses_a_module_boundary(stem):
    module_aliases = {name for target, name in imports(stem) if name == target}
    offenders = [f"from {target} import {name}" for target, name in imports(stem)
                 if name and name.startswith("_") and not name.startswith("__")]
    for node in ast.walk(parsed(stem)):
        # obj._name is the module's own business only on self / cls
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                and node.value.id not in ("self", "cls")):
            kind = "module" if node.value.id in module_aliases else "object"
            offenders.append(f"line {node.lineno}: {kind} {node.value.id}.{node.attr}")
    assert not offenders, f"{stem}: {offenders}"


def test_no_module_level_getattr():
    for stem in MODULES:
        names = [n.name for n in parsed(stem).body if isinstance(n, ast.FunctionDef)]
        assert "__getattr__" not in names, stem


def test_modules_import_one_another_without_cycles():
    graph = {stem: {target for target, _ in imports(stem) if target != stem} for stem in MODULES}
    # Only the package's own __init__ and __main__ may gather the modules; no module reads them.
    assert not [stem for stem, targets in graph.items() if "__init__" in targets]
    assert not [stem for stem, targets in graph.items() if "__main__" in targets]
    done, path = set(), []

    def visit(stem):
        if stem in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(stem):] + [stem]))
        if stem in done:
            return
        path.append(stem)
        for target in sorted(graph[stem]):
            visit(target)
        path.pop()
        done.add(stem)

    for stem in graph:
        visit(stem)
