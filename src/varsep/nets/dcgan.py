"""Placeholder: these networks are being written (see issue 3)."""
