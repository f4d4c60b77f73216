"""Caption encoders: free text -> fixed-size embeddings the generator is conditioned on."""

from t2i_cli.text.encoder import (
    DEFAULT_ENCODER,
    EncoderIdentity,
    MeanPoolingEncoder,
    TextEncoder,
    load_text_encoder,
)

__all__ = [
    "DEFAULT_ENCODER",
    "EncoderIdentity",
    "MeanPoolingEncoder",
    "TextEncoder",
    "load_text_encoder",
]
