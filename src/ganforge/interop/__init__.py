"""Reading networks made by other tools (NVlabs' StyleGAN2-ADA pickles) as data, into ganforge runs."""
