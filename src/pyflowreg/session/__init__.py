"""Multi-recording session processing: the three stages, their configuration and the CLI.

Examples
--------
>>> from pyflowreg.session import SessionConfig, run_stage1, run_stage2, run_stage3
>>> config = SessionConfig(root="/data/mouse42", pattern="*.tif")
>>> config.quality_setting
'quality'

``run_stage1(config)``, ``run_stage2(config)`` and ``run_stage3(config)`` then run the stages
(``docs/api.md``); ``run_stage1_array(config)`` corrects the one recording of an array task, and
``run_exports(config)`` writes the NWB and suite2p exports the config asks for.
"""

from pyflowreg._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "config": ("ConfigError", "SessionConfig", "get_array_task_id"),
    "stage1_compensate": ("run_stage1", "run_stage1_array"),
    "stage2_between_avgs": ("run_stage2",),
    "stage3_valid_mask": ("run_stage3",),
    "exports": ("run_exports",),
})
