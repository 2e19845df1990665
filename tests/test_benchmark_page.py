"""docs/benchmarks.md and README.md's headline table are what the result files give.

Both are rendered by ``benchmarks/report.py`` from ``benchmarks/results/*.json`` and
``benchmarks/reference_figures.json``; a figure typed into either by hand, or a result file
changed without re-rendering, fails here. Fix: ``python benchmarks/report.py``.
"""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("benchmark_report",
                                                  REPO / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_page_is_rendered_from_the_result_files(report):
    page = REPO / "docs" / "benchmarks.md"
    assert page.is_file(), "docs/benchmarks.md is missing; run python benchmarks/report.py"
    assert page.read_text() == report.render_page(), (
        "docs/benchmarks.md differs from the result files; run python benchmarks/report.py"
    )


def test_readme_headline_is_rendered_from_the_result_files(report):
    text = (REPO / "README.md").read_text()
    if report.START not in text:
        pytest.skip("README.md has no headline markers")
    assert text == report.render_readme(text), (
        "README.md's headline table differs from the result files; run "
        "python benchmarks/report.py"
    )


def test_rendering_depends_on_the_files_only(report, tmp_path):
    # The same files render the same page twice, and an empty results folder still renders
    # every section, each saying which command writes its file.
    assert report.render_page() == report.render_page()
    empty = report.render_page(tmp_path)
    for name, command in report.COMMANDS.items():
        assert f"benchmarks/results/{name}.json" in empty and command in empty
