"""Multi-recording session processing (stages 1-3)."""

from pyflowreg.session.config import ConfigError, SessionConfig, get_array_task_id

__all__ = ["ConfigError", "SessionConfig", "get_array_task_id"]
