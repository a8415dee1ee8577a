"""Detection presets (CMAG Tables 3-7, MagNet, Defense-GAN): preset model, runner, report."""
