"""OFOptions: presets, dict/JSON round trip and validation naming the offending option."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyflowreg.motion_correction import OFOptions


@pytest.mark.parametrize(
    ("preset", "level", "iterations", "reference", "refine"),
    [("quality", 1, 10, 200, True), ("balanced", 1, 10, 100, True), ("fast", 3, 20, 100, False)],
)
def test_presets_map_to_level_iterations_reference_frames_and_refinement(
    preset, level, iterations, reference, refine
):
    options = OFOptions(quality_setting=preset)
    params = options.flow_parameters
    assert (params.min_level, params.iterations) == (level, iterations)
    assert options.max_reference_frames == reference
    assert options.refinement is refine
    assert OFOptions(quality_setting=preset, reference_max_frames=7).max_reference_frames == 7


def test_refinement_and_stabiliser_switches():
    assert OFOptions(quality_setting="fast", refine=True).refinement is True
    assert OFOptions(quality_setting="balanced", refine=False).refinement is False
    # The refinement starts from temporally filtered flows: without the filter it is off.
    assert OFOptions(quality_setting="balanced", temporal_filter=False).refinement is False
    assert OFOptions(quality_setting="custom", min_level=2).refinement is True
    assert OFOptions().stabilise_noise is True
    with pytest.raises(ValueError, match="refine must be"):
        OFOptions(refine="yes")
    with pytest.raises(ValueError, match="stabilise_noise must be"):
        OFOptions(stabilise_noise=1)
    assert OFOptions().select_alpha is True
    with pytest.raises(ValueError, match="select_alpha must be"):
        OFOptions(select_alpha="no")
    # A plain dict (config flow_options) round-trips the switch.
    assert OFOptions.from_dict(OFOptions(select_alpha=False).to_dict()).select_alpha is False


def test_explicit_iterations_override_preset_and_custom_defaults_to_50():
    assert OFOptions(quality_setting="balanced", iterations=7).flow_parameters.iterations == 7
    custom = OFOptions(quality_setting="custom", min_level=2)
    assert custom.flow_parameters.iterations == 50


def test_default_preset_is_quality():
    assert OFOptions().quality_setting == "quality"
    assert OFOptions().flow_parameters.iterations == 10
    assert OFOptions().max_reference_frames == 200


def test_explicit_min_level_overrides_preset_and_custom_needs_it():
    assert OFOptions(quality_setting="custom", min_level=2).flow_parameters.min_level == 2
    assert OFOptions(quality_setting="fast", min_level=3).flow_parameters.min_level == 3
    with pytest.raises(ValueError, match="min_level"):
        OFOptions(quality_setting="custom")


def test_defaults_match_documentation():
    opts = OFOptions()
    assert opts.alpha == (1.5, 1.5)
    np.testing.assert_array_equal(opts.sigma, [[1.0, 1.0, 0.1]])
    assert list(opts.reference_frames) == [50, 500]
    assert (opts.buffer_size, opts.reference_passes, opts.chunk_frames) == (400, 3, 32)
    assert (opts.output_format, opts.output_dtype) == ("HDF5", "float32")
    assert opts.save_w is False and opts.save_valid_idx is True


def _custom_options() -> OFOptions:
    return OFOptions(
        quality_setting="balanced", alpha=(2.0, 3.0), sigma=[[1.5, 1.0, 0.5], [1.0, 1.0, 0.0]],
        iterations=20, weight=[0.7, 0.3], channel_normalization="separate", buffer_size=64,
        reference_frames=[1, 4, 9], reference_passes=2, output_format="tiff",
        output_dtype="same", save_w=True, n_workers=1, chunk_frames=8,
    )


def test_from_json_round_trip_via_to_dict(tmp_path):
    original = _custom_options()
    values = original.to_dict()
    path = tmp_path / "options.json"
    path.write_text(json.dumps(values))  # to_dict must be JSON-compatible
    loaded = OFOptions.from_json(path)
    assert loaded.to_dict() == values
    assert loaded.output_format == "TIFF"
    assert loaded.flow_parameters == original.flow_parameters
    np.testing.assert_array_equal(loaded.sigma, original.sigma)


def test_from_dict_round_trip_of_defaults():
    assert OFOptions.from_dict(OFOptions().to_dict()).to_dict() == OFOptions().to_dict()
    assert OFOptions.from_dict(None).to_dict() == OFOptions().to_dict()


def test_options_compare_equal_after_round_trip():
    original = _custom_options()
    assert OFOptions.from_dict(original.to_dict()) == original
    assert OFOptions() != OFOptions(quality_setting="fast")


def test_replace_validates_again():
    opts = OFOptions().replace(buffer_size=10)
    assert opts.buffer_size == 10
    with pytest.raises(ValueError, match="buffer_size"):
        OFOptions().replace(buffer_size=0)


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="bufer_size"):
        OFOptions.from_dict({"bufer_size": 10})


def test_from_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        OFOptions.from_json(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        OFOptions.from_json(broken)
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    with pytest.raises(ValueError, match="array.json"):
        OFOptions.from_json(array)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("quality_setting", "best"),
        ("min_level", -1),
        ("min_level", 2.5),
        ("alpha", -1.0),
        ("alpha", (1.0, 2.0, 3.0)),
        ("alpha", "strong"),
        ("sigma", [1.0, 1.0]),
        ("sigma", [1.0, -1.0, 0.1]),
        ("levels", 0),
        ("eta", 1.5),
        ("eta", "fine"),
        ("iterations", 0),
        ("update_lag", 0),
        ("a_data", 0.0),
        ("a_smooth", 2.0),
        ("const_assumption", "brightness"),
        ("weight", [-1.0]),
        ("weight", "equal"),
        ("channel_normalization", "global"),
        ("buffer_size", 0),
        ("buffer_size", -1),
        ("buffer_size", 2.5),
        ("buffer_size", True),
        ("reference_frames", []),
        ("reference_frames", [5, 2]),
        ("reference_frames", [1.5, 3]),
        ("reference_passes", 0),
        ("reference_tolerance", 0),
        ("reference_tolerance", float("nan")),
        ("output_format", "AVI"),
        ("output_dtype", "complex64"),
        ("save_w", "yes"),
        ("save_valid_idx", 1),
        ("n_workers", 0),
        ("chunk_frames", 0),
        ("verbose", None),
    ],
)
def test_invalid_value_is_rejected_naming_the_option(name, value):
    with pytest.raises(ValueError, match=name):
        OFOptions(**{name: value})
    with pytest.raises(ValueError, match=name):
        OFOptions.from_dict({name: value})
