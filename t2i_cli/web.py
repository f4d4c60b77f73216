"""The browser demo: a Gradio page over the same :class:`T2IPipeline` the CLI uses.

No model code lives here: the page collects a caption and settings, calls the pipeline, and shows
the 64 px images beside their upscaled versions in a chat-like history. Three named API endpoints,
``/generate``, ``/interpolate`` and ``/restyle``, serve ``gradio_client`` callers.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
from PIL import Image

from srcnn.errors import SRError
from t2i_cli.data.images import open_image
from t2i_cli.errors import T2IError
from t2i_cli.grid import save_image
from t2i_cli.pipeline import SR_METHODS, T2IPipeline, check_interpolation, check_request

log = logging.getLogger(__name__)

MAX_IMAGES = 8
FILE_LIFETIME = 600  # seconds: the page's image files, and Gradio's copies of them, are kept this long
EXAMPLES = [
    "this flower has bright pink petals and a yellow center",
    "a white flower with five broad rounded petals",
    "this flower has red petals that are ruffled at the edges",
    "a purple flower with a cluster of thin petals",
    "a yellow sunflower with a dark brown center",
]


def refuse(message: str) -> gr.Error:
    """A user error: one line in the server log and a message on the page, no traceback."""
    log.info("refused a request: %s", message)
    return gr.Error(message, print_exception=False)


class DemoBackend:
    """Validates requests and runs them one at a time through the shared pipeline.

    One lock: the models are shared, and the caption tokenizer must not be entered by two
    threads at once; torch already uses every core for one request.
    """

    def __init__(self, pipeline: T2IPipeline, files: Path | None = None):
        self.pipeline = pipeline
        self.lock = threading.Lock()
        self.files = Path(files) if files is not None else Path(tempfile.mkdtemp(prefix="t2i-demo-"))

    def describe(self) -> str:
        sr = [self.pipeline.upscaler(scale, "auto").describe() for scale in (2, 3, 4)]
        return f"**Loaded:** {self.pipeline.describe()}.  \n**Upscaling:** {', '.join(sr)}."

    def _file(self, image: Image.Image) -> str:
        """The image as a new file of its own, written whole before it is named. Gradio copies a
        file into its cache atomically, but writes a returned PIL image in place at a path named
        by its content: two requests with an identical image then raced, and a download could
        read the file while the other rewrote it (truncated images under load)."""
        cutoff = time.time() - FILE_LIFETIME
        for old in self.files.glob("*.png"):
            with contextlib.suppress(FileNotFoundError):  # another request may be removing it too
                if old.stat().st_mtime < cutoff:
                    old.unlink()
        return str(save_image(image, self.files / f"{uuid.uuid4().hex}.png"))

    @staticmethod
    def _seed(seed: float | int | None, random_seed: bool) -> int:
        if random_seed or seed is None:
            return secrets.randbelow(2**31)
        if float(seed) != int(seed) or seed < 0:
            raise refuse(f"the seed must be a whole number of 0 or more, got {seed}")
        return int(seed)

    def generate(self, caption: str, num_images: int, seed: float | int | None, random_seed: bool,
                 upscale: int, sr_method: str) -> tuple[list[tuple[str, str]], dict]:
        """Returns gallery items (each 64 px image followed by its upscaled version) and a summary."""
        if not isinstance(caption, str) or not caption.strip():
            raise refuse("Write a caption first: the page needs a description of the flower.")
        num_images = int(num_images)
        if not 1 <= num_images <= MAX_IMAGES:
            raise refuse(f"Ask for between 1 and {MAX_IMAGES} images, not {num_images}.")
        used_seed = self._seed(seed, random_seed)
        try:
            check_request(caption, num_images=num_images, seed=used_seed, upscale=int(upscale), sr_method=sr_method)
            with self.lock:  # only a request the pipeline accepts waits for the models
                result = self.pipeline(caption, num_images=num_images, seed=used_seed,
                                       upscale=int(upscale), sr_method=sr_method)
        except (T2IError, SRError) as exc:
            raise refuse(str(exc)) from None
        items: list[tuple[str, str]] = []
        for index, image in enumerate(result.images):
            items.append((self._file(image), f"seed {result.seeds[index]}, 64 px"))
            if result.upscaled is not None:
                big = result.upscaled[index]
                items.append((self._file(big), f"seed {result.seeds[index]}, {big.width} px ({result.upscaler})"))
        summary = {
            "caption": result.captions[0], "seeds": result.seeds, "upscale": int(upscale),
            "upscaler": result.upscaler or "none", "sizes": [list(i.size) for i in result.final],
        }
        return items, summary

    def restyle(self, photo: Image.Image | str | None, caption: str, photo_caption: str | None, upscale: int,
                sr_method: str) -> tuple[list[tuple[str, str]], dict]:
        """Gallery items: the photo as the generator sees it, its redrawing (with a photo caption),
        the restyled image, then each of those upscaled; and a summary. ``photo``: an image, or the
        path of an upload, decoded here by the project's own loader (its checks, its messages)."""
        if photo is None:
            raise refuse("Upload a photo first: its layout is what the new caption is drawn into.")
        if not isinstance(photo, Image.Image):
            try:
                photo = open_image(photo, what="the photo")
            except T2IError as exc:
                raise refuse(f"{exc}: upload a JPEG, PNG or WebP photo.") from None
        if not isinstance(caption, str) or not caption.strip():
            raise refuse("Write a caption: what the photo's flower should become.")
        photo_caption = photo_caption if isinstance(photo_caption, str) and photo_caption.strip() else None
        try:
            check_request(caption, upscale=int(upscale), sr_method=sr_method)
            with self.lock:
                result = self.pipeline.restyle(photo, caption, photo_caption=photo_caption, upscale=int(upscale), sr_method=sr_method)
        except (T2IError, SRError) as exc:
            raise refuse(str(exc)) from None
        items: list[tuple[str, str]] = []
        for images, size in ((result.small, "64 px"), (result.upscaled, f"×{int(upscale)} ({result.upscaler})")):
            if images is None:
                continue
            items.append((self._file(images.photo), f"your photo, {size}"))
            if images.reconstruction is not None:
                items.append((self._file(images.reconstruction), f"redrawn as: {result.photo_caption}, {size}"))
            items.append((self._file(images.restyled[0]), f"restyled: {result.captions[0]}, {size}"))
        summary = {"caption": result.captions[0], "photo_caption": result.photo_caption, "upscale": int(upscale),
                   "upscaler": result.upscaler or "none", "sizes": [list(result.final.restyled[0].size)]}
        return items, summary

    def style_note(self) -> str:
        """Which style encoder the Restyle tab uses, or why it cannot run."""
        try:
            self.pipeline.style_encoder()
        except T2IError as exc:
            return f"**Restyling is not available:** {exc}."
        return ("The photo's centre square is encoded into the generator's noise (pose, place, background) by a "
                "style encoder trained for this generator, then drawn with your caption.")

    def interpolate(self, first: str, second: str, steps: int, seed: float | int | None,
                    random_seed: bool) -> list[tuple[str, str]]:
        if not first or not first.strip() or not second or not second.strip():
            raise refuse("Write both captions to interpolate between them.")
        steps = int(steps)
        if not 2 <= steps <= 16:
            raise refuse(f"Use between 2 and 16 steps, not {steps}.")
        used_seed = self._seed(seed, random_seed)
        try:
            check_interpolation(first, second, steps=steps, seed=used_seed)
            with self.lock:
                result = self.pipeline.interpolate(first, second, steps=steps, seed=used_seed)
        except (T2IError, SRError) as exc:
            raise refuse(str(exc)) from None
        return [(self._file(image), f"{i / (steps - 1):.2f}") for i, image in enumerate(result.images)]


# Components whose own checks refuse a value the way the backend does: one log line and a plain
# message. Gradio's Slider, Number and Radio raise their range and choice errors with a traceback in
# the server log. ``is_template`` makes the page draw each as the Gradio component it extends.
def _checked(preprocess, payload):
    try:
        return preprocess(payload)
    except gr.Error as exc:
        raise refuse(exc.message) from None


class Slider(gr.Slider):
    is_template = True

    def preprocess(self, payload):
        return _checked(super().preprocess, payload)


class Number(gr.Number):
    is_template = True

    def preprocess(self, payload):
        return _checked(super().preprocess, payload)


class Radio(gr.Radio):
    is_template = True

    def preprocess(self, payload):
        return _checked(super().preprocess, payload)


class PhotoUpload(gr.Image):
    """An image upload handed over as its file, undecoded: Gradio's own preprocessing opens it with
    PIL and answers a text file, an empty file or a decompression bomb with its internals (the
    component's class, the server's temp path, PIL's exception); the backend decodes it instead."""

    is_template = True

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path is None and payload.url and payload.url.startswith("data:"):
            import base64

            return base64.b64decode(payload.url.split(",", 1)[-1])
        return payload.path


def build_demo(pipeline: T2IPipeline) -> gr.Blocks:
    backend = DemoBackend(pipeline)
    # Gradio's copies of the page's images go after FILE_LIFETIME, checked as often: a bounded cache.
    with gr.Blocks(title="t2i: captions to flowers", delete_cache=(FILE_LIFETIME, FILE_LIFETIME)) as demo:
        gr.Markdown("# t2i: captions to flowers\nDescribe a flower; a conditional GAN draws it at 64 px "
                    "and FSRCNN (or SRCNN) enlarges it.")
        gr.Markdown(backend.describe(), elem_id="loaded-models")
        with gr.Tab("Generate"):
            chat = gr.Chatbot(label="Images", show_label=False, height=560, elem_id="history")
            with gr.Row():
                caption = gr.Textbox(placeholder="this flower has pink petals and a yellow center",
                                     label="Caption", scale=4, elem_id="caption")
                send = gr.Button("Generate", variant="primary", scale=1, elem_id="generate")
            with gr.Row():
                num_images = Slider(1, MAX_IMAGES, value=2, step=1, label="Images")
                seed = Number(value=0, precision=0, minimum=0, label="Seed")
                random_seed = gr.Checkbox(value=False, label="Random seed")
                upscale = Slider(1, 4, value=4, step=1, label="Upscale factor")
                sr_method = Radio(list(SR_METHODS), value="auto", label="SR method")
            gr.Examples(EXAMPLES, inputs=caption, label="Example captions")
            # The latest answer again, outside the chat: Gradio's chat shows images as cropped
            # thumbnails with no larger view, while a gallery of its own opens each image whole.
            latest = gr.Gallery(label="Latest images: click one to see it whole", columns=8, object_fit="contain",
                                allow_preview=True, height="auto", format="png", elem_id="latest")
            summary = gr.JSON(visible=False)
            gallery = gr.Gallery(visible=False, format="png")

            def respond(text, history, n, s, rand, up, method):
                history = list(history or [])
                history.append({"role": "user", "content": text})
                try:
                    items, info = backend.generate(text, n, s, rand, up, method)
                except gr.Error as exc:  # said in the chat, which keeps its history; the caption stays to edit
                    history.append({"role": "assistant", "content": f"⚠️ {exc.message}"})
                    return history, text, gr.skip()
                # The answer repeats its caption: the chat scrolls to the images, the question scrolls away.
                note = f"**{info['caption']}**: " + (f"seeds {info['seeds'][0]}–{info['seeds'][-1]}; " if len(info["seeds"]) > 1 else f"seed {info['seeds'][0]}; ")
                note += f"64 px originals beside ×{info['upscale']} ({info['upscaler']}); click an image to see it whole." if info["upscale"] > 1 else "64 px; click an image to see it whole."
                history.append({"role": "assistant", "content": note})
                history.append({"role": "assistant", "content": gr.Gallery(value=items, columns=4, object_fit="contain", format="png")})
                return history, "", items

            inputs = [caption, chat, num_images, seed, random_seed, upscale, sr_method]
            send.click(respond, inputs, [chat, caption, latest], api_name=False)
            caption.submit(respond, inputs, [chat, caption, latest], api_name=False)
            # The named endpoint for gradio_client: same work, plain outputs.
            api_button = gr.Button(visible=False)
            api_button.click(
                backend.generate, [caption, num_images, seed, random_seed, upscale, sr_method],
                [gallery, summary], api_name="generate",
            )
        with gr.Tab("Interpolate"):
            with gr.Row():
                first = gr.Textbox(value="this flower has red petals", label="From")
                second = gr.Textbox(value="this flower has white petals", label="To")
            with gr.Row():
                steps = Slider(2, 16, value=8, step=1, label="Steps")
                interp_seed = Number(value=0, precision=0, minimum=0, label="Seed")
                interp_random = gr.Checkbox(value=False, label="Random seed")
                go = gr.Button("Interpolate", variant="primary")
            strip = gr.Gallery(label="Caption embedding interpolation (noise held fixed)", columns=8, format="png")
            go.click(backend.interpolate, [first, second, steps, interp_seed, interp_random], strip, api_name="interpolate")
        with gr.Tab("Restyle a photo"):
            gr.Markdown(backend.style_note(), elem_id="style-note")
            with gr.Row():
                # Decoded by the backend (PhotoUpload); the pipeline converts every mode (transparency
                # onto white, as the data files do).
                photo = PhotoUpload(type="filepath", label="Photo", image_mode=None, height=256, elem_id="photo")
                with gr.Column():
                    new_caption = gr.Textbox(value="this flower has yellow petals", label="Caption to draw it with",
                                             elem_id="restyle-caption")
                    photo_caption = gr.Textbox(value="", label="What the photo shows (optional: adds the generator's redrawing of it)",
                                               elem_id="photo-caption")
                    restyle_upscale = Slider(1, 4, value=4, step=1, label="Upscale factor")
                    restyle_method = Radio(list(SR_METHODS), value="auto", label="SR method")
                    restyle_go = gr.Button("Restyle", variant="primary", elem_id="restyle")
            restyled = gr.Gallery(label="The photo, its redrawing and the restyled image: 64 px, then upscaled", columns=3,
                                  object_fit="contain", format="png", elem_id="restyled")
            restyle_summary = gr.JSON(visible=False)
            restyle_go.click(backend.restyle, [photo, new_caption, photo_caption, restyle_upscale, restyle_method],
                             [restyled, restyle_summary], api_name="restyle")
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo
