"""The documentation states what the code does."""

import re
from pathlib import Path

from pyflowreg.session.config import schema_markdown_table, session_schema

REPO = Path(__file__).resolve().parents[1]


def test_config_readme_table_matches_schema():
    text = (REPO / "config" / "README.md").read_text()
    table = re.search(r"<!-- schema-table:start -->\n(.*)<!-- schema-table:end -->", text, re.S)
    assert table, "config/README.md lost its schema table markers"
    assert table.group(1) == schema_markdown_table(), (
        "config/README.md is out of date; regenerate the table with schema_markdown_table()"
    )


def test_every_schema_key_is_in_the_default_workflow_config():
    # Every key of the schema, not a hand-written list: shown set, or commented out with why.
    config = (REPO / "config" / "config.yaml").read_text()
    keys = session_schema()["properties"]
    missing = [key for key in keys if not re.search(rf"^(# )?{key}:", config, re.M)]
    assert missing == [], f"config/config.yaml does not show {missing}"


def test_version_is_one_in_pyproject_package_and_changelog():
    import tomllib

    import pyflowreg

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    latest = re.search(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert latest, "CHANGELOG.md has no version heading"
    assert pyflowreg.__version__ == version == latest.group(1)


# Phrases that narrate the project's history instead of saying what is; what changed belongs in
# CHANGELOG.md. Built from pieces so that this file does not match itself.
HISTORY = re.compile("|".join([
    r"\bthis " + "stop\\b", r"\b(latest|earlier|previous) " + "stop\\b", r"\bprevious " + "release",
    r"\brelease " + "before\\b", r"\bthis " + "release\\b", r"\b[Ii]ssue " + r"#?\d+",
]))
DOCUMENTED = ("README.md", "Snakefile", "docs", "src", "tests", "scripts", "rules", "benchmarks",
              "config", "profiles", "report", "envs", ".ci")


def test_code_tests_and_docs_say_what_is_not_what_happened():
    hits = []
    for top in DOCUMENTED:
        base = REPO / top
        paths = [base] if base.is_file() else sorted(base.rglob("*"))
        for path in paths:
            if path.suffix not in {".md", ".py", ".smk", ".rst", ".yaml", ".sh", ".json", ""} \
                    or not path.is_file() or "out" in path.relative_to(REPO).parts:
                continue
            text = path.read_text(errors="ignore")
            hits += [f"{path.relative_to(REPO)}: {m.group(0)!r}" for m in HISTORY.finditer(text)]
    assert hits == [], "history narrated (say what is; changes go in CHANGELOG.md):\n" + \
        "\n".join(hits)
