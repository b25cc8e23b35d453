"""mgpt_eval."""
