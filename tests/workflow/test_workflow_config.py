"""A bad config fails while the workflow is parsed: exit != 0, one clear message, no job runs.

Also `snakemake --lint` on the workflow.
"""

from __future__ import annotations

import re

import pytest

# One worker runs the module: its fixture's eight snakemake runs are then made once.
pytestmark = pytest.mark.xdist_group("workflow_config")

# Error reports longer than this are not "one clear message" (e.g. a whole schema dump).
MAX_ERROR_LINES = 25

BAD_CONFIGS = {
    "unknown_key": ({"colour": "red"}, ["colour"]),
    "unknown_nested_key": ({"demo": {"enabled": False, "frame": 8}}, ["frame"]),
    "wrong_type": ({"cc_upsample": "four"}, ["cc_upsample", "four"]),
    "out_of_range": ({"alpha_between": 0}, ["alpha_between"]),
    "pattern_matches_nothing": ({"pattern": "nothing_*.tif"}, ["nothing_*.tif", "no recordings"]),
    "missing_center": ({"center": "nope.tif"}, ["nope.tif", "rec_00.tif"]),
    "missing_root": ({"root": "no_such_folder"}, ["no_such_folder", "does not exist"]),
    "demo_into_existing_data": (
        {"demo": {"enabled": True, "n_recordings": 3, "height": 48, "width": 48, "frames": 8}},
        ["demo.enabled", "already holds files"],
    ),
}


def error_report(output: str) -> list[str]:
    """The lines snakemake prints after its banner (and the DAG notice), blank lines dropped."""
    lines = output.splitlines()
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("  Config MD5:") or line.startswith("Building DAG of jobs"):
            start = i + 1
    return [line for line in lines[start:] if line.strip()]


@pytest.fixture(scope="module")
def data_workdir(tmp_path_factory, wf, recordings_source):
    """A workdir with three valid recordings in data/ (its config is replaced per test)."""
    return wf.make_workdir(tmp_path_factory.mktemp("badconfig") / "wd", recordings_source, 3)


@pytest.fixture(scope="module")
def bad_config_results(data_workdir, snakemake, wf):
    """{case: Result} of a real (not dry) run with each bad config, in one shared workdir."""
    results = {}
    for case, (overrides, _) in BAD_CONFIGS.items():
        configfile = data_workdir / f"{case}.yaml"
        wf.write_config(data_workdir, **overrides).rename(configfile)
        results[case] = snakemake(data_workdir, configfile=configfile)
    return results


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_fails_at_parse_time_without_jobs(case, bad_config_results, data_workdir, wf):
    result = bad_config_results[case]
    assert result.returncode != 0, result.describe()
    assert "Job stats" not in result.output, result.describe()
    assert not wf.planned_jobs(result), result.describe()
    assert not (data_workdir / "logs").exists()
    assert not (data_workdir / wf.ROOT / "compensated_outputs").exists()
    assert not (data_workdir / ".snakemake" / "metadata").exists()


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_message_names_the_problem(case, bad_config_results):
    result = bad_config_results[case]
    report = "\n".join(error_report(result.output))
    for needle in BAD_CONFIGS[case][1]:
        assert needle in report, result.describe()
    assert "Traceback (most recent call last)" not in result.output, result.describe()


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_message_is_short(case, bad_config_results):
    """One clear message: a few lines, one error, not a dump of the whole schema."""
    report = error_report(bad_config_results[case].output)
    headlines = [line for line in report if re.match(r"^\w+(Error|Exception)\b", line)]
    assert len(report) <= MAX_ERROR_LINES, "\n".join(report[:60])
    assert 1 <= len(headlines) <= 2, "\n".join(report)


def test_demo_into_empty_existing_root_is_allowed(tmp_path, snakemake, wf):
    """An existing but empty root is fine for the demo (only foreign files are refused)."""
    (tmp_path / "demo_data").mkdir()
    wf.write_config(tmp_path, wf.DEMO_CONFIG)
    result = snakemake.ok(tmp_path, "-n")
    assert wf.job_counts(result)["demo_session"] == 1


def test_lint_is_clean(tmp_path, snakemake, wf):
    """`snakemake --lint` on the repo's Snakefile (and included rules) finds nothing."""
    wf.write_config(tmp_path, wf.DEMO_CONFIG)
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.describe()
    assert "Congratulations, your workflow is in a good condition!" in result.output, (
        result.describe()
    )
