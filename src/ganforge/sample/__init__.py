"""Generation from trained models: latents by seed, grids, interpolation."""
