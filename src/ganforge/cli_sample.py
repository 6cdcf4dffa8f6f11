"""`ganforge interpolate` and other sampling verbs (attached to ganforge.cli.main)."""
