"""Motion correction of one recording against a reference built from it."""
