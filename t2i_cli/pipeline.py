"""One way to run the model: captions -> caption encoder -> generator -> images.

The CLI, the web demo and the tests all go through :class:`T2IPipeline`. Image ``j`` of every
caption uses the noise drawn from ``seed + j`` (or a :class:`~t2i_cli.sampling.NoiseRecipe` built on
such draws), whatever else is in the batch, so different captions with one seed share their noise.
The same request gives the same pixels; drawn in a batch of another size, an image can differ by
a grey level here and there (a convolution's arithmetic follows the batch's size).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from PIL import Image

from srcnn.model import SCALES
from srcnn.upscale import METHODS
from t2i_cli.checkpoint import RunFolder
from t2i_cli.config import ModelConfig
from t2i_cli.devices import resolve_device
from t2i_cli.errors import RequestError, T2IError
from t2i_cli.grid import captioned_grid, to_pil, to_unit_range
from t2i_cli.sampling import NO_TRUNCATION, NoiseRecipe, Sampling, check_strength, draw, load_generator
from t2i_cli.weights import WEIGHTS_DIR, default_checkpoint
from t2i_cli.text.checks import caption_problem, clean_caption
from t2i_cli.text.encoder import MINILM_NAME, EncoderIdentity, TextEncoder, load_text_encoder

if TYPE_CHECKING:
    from srcnn.upscale import Upscaler

log = logging.getLogger(__name__)

MAX_IMAGES_PER_REQUEST = 1024


@dataclass
class GenerationResult:
    images: list[Image.Image]  # caption-major: all images of caption 0, then caption 1, ...
    captions: list[str]  # one per image
    seeds: list[int]  # one per image
    per_caption: int  # images in each caption's row
    noise: list[NoiseRecipe]  # each image's noise (with the candidate reranking chose): --noise-from draws it again
    upscaled: list[Image.Image] | None = None  # the SR stage's output, when one was asked for
    upscaler: str | None = None  # which SR stage made ``upscaled``

    @property
    def final(self) -> list[Image.Image]:
        """What the user asked for: the upscaled images if there are any, else the generated ones."""
        return self.upscaled if self.upscaled is not None else self.images

    def grid(self) -> Image.Image:
        """A sheet with one row per caption, the caption written beside its (final) images."""
        n, images = self.per_caption, self.final
        rows = [(self.captions[i], images[i : i + n]) for i in range(0, len(images), n)]
        return captioned_grid(rows)


SR_METHODS = METHODS
UPSCALE_FACTORS = (1, *SCALES)  # 1: no upscaling


@dataclass
class RestyleImages:
    photo: Image.Image  # the square crop of the photo the style encoder sees
    reconstruction: Image.Image | None  # G(S(photo), the photo's own caption), when one was given
    restyled: list[Image.Image]  # G(S(photo), caption), one per caption

    @property
    def photo_and_reconstruction(self) -> list[Image.Image]:
        """The photo, then its reconstruction when there is one."""
        return [self.photo] + ([self.reconstruction] if self.reconstruction is not None else [])


@dataclass
class RestyleResult:
    captions: list[str]
    photo_caption: str | None
    small: RestyleImages  # at the generator's size
    upscaled: RestyleImages | None = None  # the SR stage's output, when one was asked for
    upscaler: str | None = None

    @property
    def final(self) -> RestyleImages:
        return self.upscaled if self.upscaled is not None else self.small

    def grid(self) -> Image.Image:
        """A sheet: the photo (and its reconstruction), then a row per caption with its restyled image."""
        images = self.final
        label = "photo" if images.reconstruction is None else f"photo | redrawn as: {self.photo_caption}"
        return captioned_grid([(label, images.photo_and_reconstruction)] + [(c, [i]) for c, i in zip(self.captions, images.restyled)])


def validate_captions(captions: list[str]) -> list[str]:
    """The captions cleaned (:func:`~t2i_cli.text.checks.clean_caption`); refuses none at all and
    any that is no usable text (:func:`~t2i_cli.text.checks.caption_problem`)."""
    if not captions:
        raise RequestError("no caption given", parameter="captions")
    cleaned = []
    for number, caption in enumerate(captions, start=1):
        problem = caption_problem(caption)
        if problem is not None:
            raise RequestError(f"caption {number} {problem}", parameter="captions")
        cleaned.append(clean_caption(caption))
    return cleaned


def check_request(captions: list[str] | str, *, num_images: int = 1, seed: int = 0, upscale: int = 1,
                  sr_method: str = "auto", truncation: float = NO_TRUNCATION, variation_of: int | str | None = None,
                  strength: float = 0.0, rerank: int = 1, noise_from: int | str | None = None) -> list[str]:
    """Everything about a generation request that can be checked before a model is loaded;
    returns the cleaned captions. Front ends call it first, so bad input costs no loading time."""
    captions = validate_captions([captions] if isinstance(captions, str) else list(captions))
    if num_images < 1:
        raise RequestError(f"the number of images per caption must be at least 1, got {num_images}", parameter="num_images")
    if len(captions) * num_images > MAX_IMAGES_PER_REQUEST:
        raise RequestError(f"{len(captions) * num_images} images asked for; at most {MAX_IMAGES_PER_REQUEST} at once", parameter="num_images")
    check_seed(seed)
    Sampling(truncation=truncation, rerank=rerank).check()
    if variation_of is not None:
        if isinstance(variation_of, str) and variation_of.strip().lstrip("-").isdigit():  # a seed, as the CLI passes it
            variation_of = int(variation_of)
        if isinstance(variation_of, int):
            check_seed(variation_of, parameter="variation_of")
        try:
            NoiseRecipe.of(variation_of)
        except RequestError as exc:
            raise RequestError(str(exc), parameter="variation_of") from None
        check_strength(strength)
    if noise_from is not None:
        if variation_of is not None:
            raise RequestError("--noise-from draws one flower's noise and --variation-of varies it: give one of them", parameter="noise_from")
        if num_images != 1:
            raise RequestError(f"--noise-from draws every image with one noise: ask for 1 image per caption, not {num_images}", parameter="noise_from")
        recipe = NoiseRecipe.of(noise_from)  # refused now if it is no recipe, before any model loads
        if rerank > 1:
            recipe.check_unchosen()
    if upscale not in UPSCALE_FACTORS:
        raise RequestError(f"the upscale factor must be 1, 2, 3 or 4, got {upscale}", parameter="upscale")
    if sr_method not in SR_METHODS:
        raise RequestError(f"the upscaling method must be {', '.join(SR_METHODS[:-1])} or {SR_METHODS[-1]}, got {sr_method!r}", parameter="sr_method")
    return captions


def interpolation_file(step: int) -> str:
    """The file of an interpolation's image ``step`` (from 0) in the folder ``t2i interpolate`` writes."""
    return f"{step:03d}.png"


def check_interpolation(first: str, second: str, *, steps: int = 8, seed: int = 0, noise_from: int | str | None = None,
                        truncation: float = NO_TRUNCATION, upscale: int = 1, sr_method: str = "auto") -> tuple[str, str]:
    """:func:`check_request` for an interpolation; returns the two cleaned captions."""
    first, second = validate_captions([first, second])
    if steps < 2:
        raise RequestError(f"an interpolation needs at least 2 steps, got {steps}", parameter="steps")
    if steps > MAX_IMAGES_PER_REQUEST:
        raise RequestError(f"an interpolation has at most {MAX_IMAGES_PER_REQUEST} steps, got {steps}", parameter="steps")
    check_request(first, seed=seed, truncation=truncation, upscale=upscale, sr_method=sr_method, noise_from=noise_from)
    return first, second


class T2IPipeline:
    """Captions -> images, composed of parts a caller may pass in or replace: the generator, the
    caption encoder (a :class:`~t2i_cli.text.encoder.TextEncoder`; None for an unconditional
    generator), and the SR stage per scale (``upscalers``: :class:`srcnn.Upscaler` objects, or
    ``sr_weights`` files to build them from; the shipped networks serve the other scales)."""

    def __init__(
        self,
        *,
        generator: torch.nn.Module,
        model_config: ModelConfig,
        device: torch.device,
        caption_encoder: TextEncoder | None = None,
        source: Path | None = None,
        sr_weights: Sequence[str | Path] = (),
        upscalers: Sequence["Upscaler"] = (),
        encoder: TextEncoder | None = None,  # caption_encoder's first name, for code written against it
    ):
        if encoder is not None and caption_encoder is not None and encoder is not caption_encoder:
            raise T2IError("give the caption encoder once: caption_encoder= (encoder= is its old name)")
        self.generator = generator.to(device).eval().requires_grad_(False)
        self.caption_encoder = caption_encoder if caption_encoder is not None else encoder
        if model_config.conditional and self.caption_encoder is None:
            raise T2IError("a conditional generator needs its caption encoder: pass caption_encoder=", parameter="encoder")
        self.model_config = model_config
        self.device = device
        self.source = source
        self._upscalers: dict[tuple[int, str], "Upscaler"] = {}
        # The caller's SR stage by scale (the shipped networks serve the others), and the files given for it.
        self.sr_weights, self.given_upscalers = _callers_upscalers(sr_weights, upscalers, device)
        self._style_encoders: dict[Path | None, torch.nn.Module] = {}
        self._scorer = None

    @property
    def encoder(self) -> TextEncoder | None:
        """The caption encoder, by its first name (kept for scripts written against it)."""
        return self.caption_encoder

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, *, device: str = "auto", encoder: "str | TextEncoder | None" = None,
        sr_weights: Sequence[str | Path] = (), upscalers: Sequence["Upscaler"] = (),
    ) -> "T2IPipeline":
        """Load a checkpoint folder or training run; its config says how to rebuild everything.

        ``encoder``: where to find the caption encoder the generator records (a spec such as
        ``hf:PATH``, needed for encoders other than MiniLM), or an encoder already loaded; either
        way it must have the identity the generator was trained with. ``sr_weights``: SR weights
        files (SRCNN or FSRCNN, one per scale), or ``upscalers``: :class:`srcnn.Upscaler` objects,
        used instead of the shipped networks for their scales.
        """
        if path is None:
            path = default_checkpoint()
            if not Path(path).exists():
                raise T2IError(
                    f"no generator weights at {path}: train one (t2i train) and load its run folder, or set T2I_CHECKPOINT",
                    parameter="checkpoint",
                )
        started = time.perf_counter()
        generator, info = load_generator(path)
        log.debug("generator %s: %s, epoch %d, loaded in %.2f s", info.path, info.model, info.epoch, time.perf_counter() - started)
        torch_device = resolve_device(device)
        caption_encoder = None
        if info.model.conditional:
            started = time.perf_counter()
            caption_encoder = _caption_encoder_for(info.encoder, given=encoder, device=device, checkpoint=info.path)
            log.debug("caption encoder %s (%s backend) loaded in %.2f s", caption_encoder.identity,
                      getattr(caption_encoder, "backend", "?"), time.perf_counter() - started)
        return cls(generator=generator, caption_encoder=caption_encoder, model_config=info.model, device=torch_device,
                   source=info.path, sr_weights=sr_weights, upscalers=upscalers)

    def describe(self) -> str:
        encoder = self.caption_encoder.identity if self.caption_encoder is not None else "none (unconditional)"
        name = "(in memory)" if self.source is None else self.source.name
        run = RunFolder.of_checkpoint(self.source) if self.source is not None else None
        if run is not None:  # RUN/checkpoints/epoch-N
            name = f"{run.root.name} ({self.source.name})"
        return f"generator {name} ({self.model_config.arch}, {self.model_config.image_size} px), encoder {encoder}, on {self.device}"

    def _draw(self, embeddings: torch.Tensor | None, noise: list[NoiseRecipe], batch_size: int, progress=None,
              truncation: float = NO_TRUNCATION, rerank: int = 1) -> tuple[list[Image.Image], list[NoiseRecipe]]:
        sampling = Sampling(truncation=truncation, rerank=rerank, scorer=self.scorer() if rerank > 1 else None)
        drawn = draw(self.generator, embeddings, noise, device=self.device, batch_size=batch_size, sampling=sampling, progress=progress)
        return to_pil(drawn.images), drawn.noise

    def scorer(self):
        """What ``rerank`` scores candidates with: the caption-matching encoder in the ``matcher``
        folder beside the generator's weights (loaded once; not the network behind R-precision or FID)."""
        from t2i_cli.training.matching import checkpoint_scorer

        if self._scorer is None:
            if self.source is None:
                raise T2IError("this pipeline's generator was not loaded from a checkpoint, so it has no caption-matching "
                               "model to rerank with", parameter="rerank")
            identity = json.loads(self.caption_encoder.identity.to_json()) if self.caption_encoder is not None else None
            self._scorer = checkpoint_scorer(self.source, device=self.device, encoder=identity)
        return self._scorer

    def embed(self, captions: list[str]) -> torch.Tensor | None:
        if self.caption_encoder is None:
            return None
        for index in self.caption_encoder.overlong(captions):
            log.warning(
                "caption %d is longer than the caption encoder's %d tokens; only its beginning is used",
                index + 1, self.caption_encoder.max_tokens,
            )
        return self.caption_encoder.encode(captions)

    def upscaler(self, scale: int, method: str = "auto") -> "Upscaler":
        """The SR stage for ``scale``, loaded once: the caller's for that scale (``upscalers`` or
        ``sr_weights``), else the shipped network (FSRCNN or SRCNN) from ``weights/``, or bicubic."""
        from srcnn.networks import display_name
        from srcnn.upscale import Upscaler

        given = self.given_upscalers.get(scale) if method != "bicubic" else None
        if given is not None:
            if method not in ("auto", given.method):
                raise T2IError(f"{given.source.name if given.source else f'the SR network given for x{scale}'} holds "
                               f"{display_name(given.method)} weights, not {method}", parameter="sr_method")
            return given
        key = (scale, method)
        if key not in self._upscalers:
            self._upscalers[key] = Upscaler.load(scale, weights_dir=WEIGHTS_DIR, method=method, device=self.device)
        return self._upscalers[key]

    def __call__(
        self,
        captions: list[str] | str,
        *,
        num_images: int = 1,
        seed: int = 0,
        upscale: int = 1,
        sr_method: str = "auto",
        batch_size: int = 64,
        truncation: float = NO_TRUNCATION,
        variation_of: int | str | NoiseRecipe | None = None,
        strength: float = 0.0,
        rerank: int = 1,
        noise_from: int | str | NoiseRecipe | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> GenerationResult:
        """Images for ``captions`` (``num_images`` each, seeds ``seed + j``, noise truncated to the
        share ``truncation`` of its distribution: 1 = none), upscaled when asked. With
        ``variation_of`` (a seed or a :class:`~t2i_cli.sampling.NoiseRecipe`), image j's noise is
        that flower's moved by ``strength`` towards seed ``seed + j``'s: variations of one flower.
        With ``noise_from`` (likewise), every caption is drawn once with that flower's noise: its
        pose and framing kept, its content from the caption.
        With ``rerank`` K > 1, each image is the best of K candidates by the caption-matching model
        (:meth:`scorer`); the first candidate is the image drawn without reranking.
        ``progress(n)`` is called as each batch of n images is drawn."""
        captions = check_request(captions, num_images=num_images, seed=seed, upscale=upscale, sr_method=sr_method,
                                 truncation=truncation, variation_of=variation_of, strength=strength, rerank=rerank,
                                 noise_from=noise_from)
        upscaler = self.upscaler(upscale, sr_method) if upscale > 1 else None
        seeds = [seed + j for _ in captions for j in range(num_images)]
        if noise_from is not None:
            noise = [NoiseRecipe.of(noise_from)] * len(captions)
        elif variation_of is not None:
            noise = [NoiseRecipe.of(variation_of).vary(strength, s) for s in seeds]
        else:
            noise = [NoiseRecipe.of(s) for s in seeds]
        embeddings = self.embed(captions)
        if embeddings is not None:
            embeddings = embeddings.repeat_interleave(num_images, dim=0)  # (C * N, D)
        images, noise = self._draw(embeddings, noise, batch_size, progress, truncation=truncation, rerank=rerank)
        result = GenerationResult(images, [c for c in captions for _ in range(num_images)], seeds, num_images, noise)
        if upscaler is not None:
            result.upscaled = upscaler.upscale_images(images)
            result.upscaler = upscaler.describe()
        return result

    def style_encoder(self, path: str | Path | None = None) -> torch.nn.Module:
        """The style encoder for this generator (loaded once): ``path``, else the ``style-encoder``
        folder inside the generator's checkpoint; one trained for another generator is refused."""
        from t2i_cli.style import default_style_path, load_style_encoder

        key = None if path is None else Path(path)
        if key not in self._style_encoders:
            if self.source is None:
                raise T2IError("this pipeline's generator was not loaded from a checkpoint: name the style encoder's folder")
            folder = default_style_path(self.source) if path is None else Path(path)
            self._style_encoders[key] = load_style_encoder(folder, generator_checkpoint=self.source).to(self.device)
        return self._style_encoders[key]

    @torch.inference_mode()
    def restyle(
        self,
        photo: Image.Image,
        captions: list[str] | str,
        *,
        photo_caption: str | None = None,
        upscale: int = 1,
        sr_method: str = "auto",
        style: str | Path | None = None,
    ) -> RestyleResult:
        """Draw ``photo``'s layout with each caption's content: ``G(S(photo), caption)`` (Reed et
        al. 2016, §5.3). With ``photo_caption`` (what the photo shows), also ``G(S(photo),
        photo_caption)``, how well the generator can redraw the photo itself."""
        from t2i_cli.style import photo_tensor

        captions = check_request(captions, upscale=upscale, sr_method=sr_method)
        if photo_caption is not None:
            photo_caption = validate_captions([photo_caption])[0]
        if self.caption_encoder is None:
            raise T2IError("this generator is unconditional: there is no caption to restyle a photo with")
        style_encoder = self.style_encoder(style)
        upscaler = self.upscaler(upscale, sr_method) if upscale > 1 else None
        pixels = photo_tensor(photo, self.model_config.image_size)[None]  # uint8 (1, 3, S, S)
        noise = style_encoder(to_unit_range(pixels).to(self.device))  # (1, Z)
        texts = captions + ([photo_caption] if photo_caption is not None else [])
        embeddings = self.embed(texts).to(self.device)
        images, _ = self.generator(noise.expand(len(texts), -1), embeddings)
        drawn = to_pil(images)
        small = RestyleImages(
            photo=to_pil(pixels)[0],
            reconstruction=drawn[-1] if photo_caption is not None else None,
            restyled=drawn[: len(captions)],
        )
        result = RestyleResult(captions, photo_caption, small)
        if upscaler is not None:
            first = small.photo_and_reconstruction
            big = upscaler.upscale_images(first + small.restyled)
            result.upscaled = RestyleImages(big[0], big[1] if photo_caption is not None else None, big[len(first):])
            result.upscaler = upscaler.describe()
        return result

    def interpolate(self, first: str, second: str, *, steps: int = 8, seed: int = 0, noise_from: int | str | NoiseRecipe | None = None,
                    truncation: float = NO_TRUNCATION, upscale: int = 1, sr_method: str = "auto") -> GenerationResult:
        """Images along the straight line between two captions' embeddings, with one noise: seed
        ``seed``'s, or the recipe ``noise_from`` (a flower to blend into another caption)."""
        if self.caption_encoder is None:
            raise T2IError("this generator is unconditional: there is no caption to interpolate")
        first, second = check_interpolation(first, second, steps=steps, seed=seed, noise_from=noise_from, truncation=truncation,
                                            upscale=upscale, sr_method=sr_method)
        upscaler = self.upscaler(upscale, sr_method) if upscale > 1 else None
        ends = self.embed([first, second])  # (2, D)
        weights = torch.linspace(0, 1, steps)[:, None]
        embeddings = (1 - weights) * ends[0] + weights * ends[1]  # (steps, D)
        recipe = NoiseRecipe.of(seed if noise_from is None else noise_from)
        images, noise = self._draw(embeddings, [recipe] * steps, batch_size=64, truncation=truncation)
        label = f"{first}  ->  {second}"
        result = GenerationResult(images, [label] * steps, [seed] * steps, steps, noise)
        if upscaler is not None:
            result.upscaled = upscaler.upscale_images(images)
            result.upscaler = upscaler.describe()
        return result


def _callers_upscalers(files: Sequence[str | Path], upscalers: Sequence["Upscaler"],
                       device: torch.device) -> tuple[dict[int, Path], dict[int, "Upscaler"]]:
    """The caller's SR stage by scale: ``upscalers`` as given, and one built from each SR weights
    file (read once, now, so a wrong one fails before any drawing); also ``{scale: file}`` for the
    files, which the commands a picture is redrawn with name. Two for one scale are refused."""
    from srcnn.upscale import Upscaler, load_model

    files_by_scale: dict[int, Path] = {}
    by_scale: dict[int, "Upscaler"] = {}
    for file in map(Path, files):
        model = load_model(file)
        scale = model.config.scale
        if scale in files_by_scale:
            raise T2IError(f"two SR weights files for x{scale}: {files_by_scale[scale]} and {file}; give one per scale", parameter="sr_weights")
        files_by_scale[scale] = file
        by_scale[scale] = Upscaler(scale, model, device=device, source=file)
    for upscaler in upscalers:
        if upscaler.scale in by_scale:
            raise T2IError(f"two SR stages given for x{upscaler.scale}; give one per scale", parameter="sr_weights")
        by_scale[upscaler.scale] = upscaler
    return files_by_scale, by_scale


def check_seed(seed: int, *, parameter: str = "seed") -> None:
    # Image j of a request uses seed + j: the last of MAX_IMAGES_PER_REQUEST must still fit a 64-bit seed.
    if seed < 0 or seed > 2**63 - 1 - MAX_IMAGES_PER_REQUEST:
        what = "the seed" if parameter == "seed" else "the seed to vary"
        raise RequestError(f"{what} must be a whole number from 0 to 2^63 - {MAX_IMAGES_PER_REQUEST + 1}, got {seed}", parameter=parameter)


def _caption_encoder_for(identity: EncoderIdentity | None, *, given: "str | TextEncoder | None", device: str,
                         checkpoint: Path) -> TextEncoder:
    """The caption encoder a conditional generator records: ``given`` (a spec or a loaded
    encoder), else MiniLM; refused unless its identity is the recorded one."""
    if identity is None:
        raise T2IError(f"checkpoint {checkpoint} is conditional but records no caption encoder")
    if given is not None and not isinstance(given, str):
        if given.identity != identity:
            raise T2IError(f"encoder mismatch: {checkpoint} was trained with {identity}, but the encoder given is {given.identity}")
        return given
    spec = given
    if spec is None:
        if identity.name != MINILM_NAME:
            raise T2IError(
                f"checkpoint {checkpoint} was trained with encoder {identity}; say where to find it (hf:PATH or ganbert:PATH)",
                parameter="encoder",
            )
        spec = "minilm"
    encoder = load_text_encoder(spec, device=device)
    if encoder.identity != identity:
        raise T2IError(f"encoder mismatch: {checkpoint} was trained with {identity}, but {spec} is {encoder.identity}")
    return encoder
