"""Placeholder: this data set is being written (see issue 3)."""
