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

from pyflowreg.session.config import ConfigError, SessionConfig, get_array_task_id
from pyflowreg.session.stage1_compensate import run_stage1, run_stage1_array
from pyflowreg.session.stage2_between_avgs import run_stage2
from pyflowreg.session.stage3_valid_mask import run_stage3

__all__ = [
    "ConfigError",
    "SessionConfig",
    "get_array_task_id",
    "run_stage1",
    "run_stage1_array",
    "run_stage2",
    "run_stage3",
]
