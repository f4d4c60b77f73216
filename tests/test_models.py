import pytest
import torch

from t2i_cli.config import ModelConfig
from t2i_cli.errors import T2IError
from t2i_cli.models import build_models


@pytest.mark.parametrize("size", [64, 128])
def test_generator_and_discriminator_shapes(size):
    config = ModelConfig(image_size=size, ngf=8, ndf=8, embedding_dim=32)
    G, D = build_models(config)
    images, stats = G(torch.randn(3, 100), torch.randn(3, 32))
    assert images.shape == (3, 3, size, size) and stats is None
    assert images.min() >= -1 and images.max() <= 1
    scores, features = D(images, torch.randn(3, 32))
    assert scores.shape == (3,) and features.shape == (3, 8 * size // 8, 4, 4)


def test_conditioning_changes_the_image_and_noise_too():
    G, _ = build_models(ModelConfig(ngf=8, ndf=8, embedding_dim=16))
    G.eval()
    z, e = torch.randn(2, 100), torch.randn(2, 16)
    base = G(z, e)[0]
    assert not torch.allclose(base, G(z, e.flip(0))[0])
    assert not torch.allclose(base, G(z.flip(0), e)[0])


def test_conditioning_augmentation_samples_in_training_and_uses_mu_in_eval():
    G, _ = build_models(ModelConfig(ngf=8, ndf=8, embedding_dim=16, conditioning_augmentation=True))
    z, e = torch.randn(4, 100), torch.randn(4, 16)
    G.train()
    _, (mu, logvar) = G(z, e)
    assert mu.shape == logvar.shape == (4, 128)
    assert not torch.allclose(G(z, e)[0], G(z, e)[0])
    G.eval()
    assert torch.equal(G(z, e)[0], G(z, e)[0])


def test_minibatch_discrimination_and_unconditional_models():
    _, D = build_models(ModelConfig(ngf=8, ndf=8, embedding_dim=16, minibatch_discrimination=True))
    assert D(torch.randn(5, 3, 64, 64), torch.randn(5, 16))[0].shape == (5,)
    G, D = build_models(ModelConfig(ngf=8, ndf=8, conditional=False, d_norm="layer"))
    images, _ = G(torch.randn(2, 100))
    assert D(images)[0].shape == (2,)
    with pytest.raises(ValueError, match="conditional"):
        build_models(ModelConfig(ngf=8, ndf=8))[0](torch.randn(2, 100))


def test_bad_model_configs():
    with pytest.raises(T2IError, match="power of two"):
        ModelConfig(image_size=96).validate()
    with pytest.raises(T2IError, match="d_norm"):
        ModelConfig(d_norm="instance").validate()
