"""Multi-recording session processing (stages 1-3)."""
