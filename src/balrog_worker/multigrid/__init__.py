"""Text observations for the MOSAIC multigrid games (Soccer, Collect)."""
