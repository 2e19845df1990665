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
