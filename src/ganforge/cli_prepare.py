"""ganforge CLI verbs (attached to ganforge.cli.main)."""
