"""mgpt_train."""
