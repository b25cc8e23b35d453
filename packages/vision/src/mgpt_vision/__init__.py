"""mgpt_vision."""
