"""Reports of a run: text for the terminal, a self-contained HTML page, safe highlighting."""
