"""advshield: does this purification or detection defense really work?

Images are float32 NCHW tensors in [0, 1] everywhere; every model holds its
own input normalisation.
"""

from advshield.errors import AdvShieldError

__version__ = "0.1.0"
__all__ = ["AdvShieldError", "__version__"]
