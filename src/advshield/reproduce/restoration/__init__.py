"""Restoration presets (CRU-Net, deep image restoration, DKN): preset model, runner, report."""
