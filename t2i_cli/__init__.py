"""t2i: text-to-image with a conditional DCGAN (GAN-INT-CLS) and an SRCNN upscaler.

Importing the package is cheap on purpose: torch and transformers are imported by the modules
that need them, so ``t2i --help`` starts fast.
"""

__version__ = "0.1.0"
