"""Model families: one module each. See `ganforge.families.base.Family` for the interface."""
