"""mgpt_bridge."""
