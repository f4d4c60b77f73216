"""The conditional DCGAN: generator, discriminator and their conditioning blocks."""

from t2i_cli.models.dcgan import Discriminator, Generator, build_models

__all__ = ["Discriminator", "Generator", "build_models"]
