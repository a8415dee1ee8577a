"""Propagation presets (perturbation-propagation.txt): NE-D / COS-D per layer over several classifiers."""
