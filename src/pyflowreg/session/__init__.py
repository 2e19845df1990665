"""Multi-recording session processing: the three stages, their configuration and the CLI.

Examples
--------
>>> from pyflowreg.session import SessionConfig, run_stage1, run_stage2, run_stage3
>>> config = SessionConfig(root="/data/mouse42", pattern="*.tif")
>>> config.quality_setting
'quality'

``run_stage1(config)``, ``run_stage2(config)`` and ``run_stage3(config)`` then run the stages
(``docs/api.md``); ``run_stage1_array(config)`` corrects the one recording of an array task.
"""

from pyflowreg._lazy import lazy_exports

_EXPORTS = {
    "ConfigError": "config",
    "SessionConfig": "config",
    "get_array_task_id": "config",
    "run_stage1": "stage1_compensate",
    "run_stage1_array": "stage1_compensate",
    "run_stage2": "stage2_between_avgs",
    "run_stage3": "stage3_valid_mask",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
