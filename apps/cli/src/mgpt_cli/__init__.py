"""mgpt_cli."""
