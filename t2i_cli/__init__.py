"""t2i: text-to-image with a conditional GAN (GAN-INT-CLS or DF-GAN) and an FSRCNN/SRCNN upscaler.

Importing the package is cheap on purpose: torch and transformers are imported by the modules
that need them, so ``t2i --help`` starts fast.
"""

__version__ = "0.1.0"
