"""Experiments shipped with the package (the recipes and the CLI call them)."""
