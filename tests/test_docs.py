"""The documentation states what the code does."""

import re
from pathlib import Path

from pyflowreg.session.config import schema_markdown_table

REPO = Path(__file__).resolve().parents[1]


def test_config_readme_table_matches_schema():
    text = (REPO / "config" / "README.md").read_text()
    table = re.search(r"<!-- schema-table:start -->\n(.*)<!-- schema-table:end -->", text, re.S)
    assert table, "config/README.md lost its schema table markers"
    assert table.group(1) == schema_markdown_table(), (
        "config/README.md is out of date; regenerate the table with schema_markdown_table()"
    )


def test_every_schema_key_is_in_the_default_workflow_config_or_documented():
    config = (REPO / "config" / "config.yaml").read_text()
    for key in ("root", "pattern", "center", "output_root", "final_results", "quality_setting",
                "flow_options", "cc_upsample", "sigma_smooth", "alpha_between",
                "iterations_between", "align_chunk_size", "align_output_format",
                "exclude_misaligned", "demo"):
        assert re.search(rf"^{key}:", config, re.M), f"config/config.yaml does not show {key}"
