"""The browser demo: a Gradio page over the same :class:`T2IPipeline` the CLI uses.

No model code lives here: the page collects a caption and settings, calls the pipeline, and shows
the 64 px images beside their upscaled versions in a chat-like history. Two named API endpoints,
``/generate`` and ``/interpolate``, serve ``gradio_client`` callers.
"""

from __future__ import annotations

import logging
import secrets
import threading

import gradio as gr
from PIL import Image

from srcnn.errors import SRError
from t2i_cli.errors import T2IError
from t2i_cli.pipeline import T2IPipeline, check_interpolation, check_request

log = logging.getLogger(__name__)

MAX_IMAGES = 8
EXAMPLES = [
    "this flower has bright pink petals and a yellow center",
    "a white flower with five broad rounded petals",
    "this flower has red petals that are ruffled at the edges",
    "a purple flower with a cluster of thin petals",
    "a yellow sunflower with a dark brown center",
]


class DemoBackend:
    """Validates requests and runs them one at a time through the shared pipeline.

    One lock: the models are shared, and the caption tokenizer must not be entered by two
    threads at once; torch already uses every core for one request.
    """

    def __init__(self, pipeline: T2IPipeline):
        self.pipeline = pipeline
        self.lock = threading.Lock()

    def describe(self) -> str:
        sr = []
        for scale in (2, 3, 4):
            sr.append(self.pipeline.upscaler(scale, "srcnn").describe())
        return f"**Loaded:** {self.pipeline.describe()}.  \n**Upscaling:** {', '.join(sr)}."

    @staticmethod
    def _seed(seed: float | int | None, random_seed: bool) -> int:
        if random_seed or seed is None:
            return secrets.randbelow(2**31)
        if float(seed) != int(seed) or seed < 0:
            raise gr.Error(f"the seed must be a whole number of 0 or more, got {seed}")
        return int(seed)

    def generate(self, caption: str, num_images: int, seed: float | int | None, random_seed: bool,
                 upscale: int, sr_method: str) -> tuple[list[tuple[Image.Image, str]], dict]:
        """Returns gallery items (each 64 px image followed by its upscaled version) and a summary."""
        if not isinstance(caption, str) or not caption.strip():
            raise gr.Error("Write a caption first: the page needs a description of the flower.")
        num_images = int(num_images)
        if not 1 <= num_images <= MAX_IMAGES:
            raise gr.Error(f"Ask for between 1 and {MAX_IMAGES} images, not {num_images}.")
        used_seed = self._seed(seed, random_seed)
        try:
            check_request(caption, num_images=num_images, seed=used_seed, upscale=int(upscale), sr_method=sr_method)
            with self.lock:  # only a request the pipeline accepts waits for the models
                result = self.pipeline(caption, num_images=num_images, seed=used_seed,
                                       upscale=int(upscale), sr_method=sr_method)
        except (T2IError, SRError) as exc:
            raise gr.Error(str(exc)) from None
        items: list[tuple[Image.Image, str]] = []
        for index, image in enumerate(result.images):
            items.append((image, f"seed {result.seeds[index]}, 64 px"))
            if result.upscaled is not None:
                big = result.upscaled[index]
                items.append((big, f"seed {result.seeds[index]}, {big.width} px ({result.upscaler})"))
        summary = {
            "caption": result.captions[0], "seeds": result.seeds, "upscale": int(upscale),
            "upscaler": result.upscaler or "none", "sizes": [list(i.size) for i in result.final],
        }
        return items, summary

    def interpolate(self, first: str, second: str, steps: int, seed: float | int | None,
                    random_seed: bool) -> list[tuple[Image.Image, str]]:
        if not first or not first.strip() or not second or not second.strip():
            raise gr.Error("Write both captions to interpolate between them.")
        steps = int(steps)
        if not 2 <= steps <= 16:
            raise gr.Error(f"Use between 2 and 16 steps, not {steps}.")
        used_seed = self._seed(seed, random_seed)
        try:
            check_interpolation(first, second, steps=steps, seed=used_seed)
            with self.lock:
                result = self.pipeline.interpolate(first, second, steps=steps, seed=used_seed)
        except (T2IError, SRError) as exc:
            raise gr.Error(str(exc)) from None
        return [(image, f"{i / (steps - 1):.2f}") for i, image in enumerate(result.images)]


def build_demo(pipeline: T2IPipeline) -> gr.Blocks:
    backend = DemoBackend(pipeline)
    with gr.Blocks(title="t2i: captions to flowers") as demo:
        gr.Markdown("# t2i: captions to flowers\nDescribe a flower; a conditional GAN draws it at 64 px "
                    "and SRCNN enlarges it.")
        gr.Markdown(backend.describe(), elem_id="loaded-models")
        with gr.Tab("Generate"):
            chat = gr.Chatbot(label="Images", height=520, elem_id="history")
            with gr.Row():
                caption = gr.Textbox(placeholder="this flower has pink petals and a yellow center",
                                     label="Caption", scale=4, elem_id="caption")
                send = gr.Button("Generate", variant="primary", scale=1, elem_id="generate")
            with gr.Row():
                num_images = gr.Slider(1, MAX_IMAGES, value=2, step=1, label="Images")
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                random_seed = gr.Checkbox(value=False, label="Random seed")
                upscale = gr.Slider(1, 4, value=4, step=1, label="Upscale factor")
                sr_method = gr.Radio(["srcnn", "bicubic"], value="srcnn", label="SR method")
            gr.Examples(EXAMPLES, inputs=caption, label="Example captions")
            summary = gr.JSON(visible=False)
            gallery = gr.Gallery(visible=False, format="png")

            def respond(text, history, n, s, rand, up, method):
                items, info = backend.generate(text, n, s, rand, up, method)
                history = list(history or [])
                history.append({"role": "user", "content": text})
                note = f"Seeds {info['seeds'][0]}–{info['seeds'][-1]}; " if len(info["seeds"]) > 1 else f"Seed {info['seeds'][0]}; "
                note += f"64 px originals beside ×{info['upscale']} ({info['upscaler']})." if info["upscale"] > 1 else "64 px."
                history.append({"role": "assistant", "content": note})
                history.append({"role": "assistant", "content": gr.Gallery(value=items, columns=4, format="png")})
                return history, ""

            inputs = [caption, chat, num_images, seed, random_seed, upscale, sr_method]
            send.click(respond, inputs, [chat, caption], api_name=False)
            caption.submit(respond, inputs, [chat, caption], api_name=False)
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
                steps = gr.Slider(2, 16, value=8, step=1, label="Steps")
                interp_seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                interp_random = gr.Checkbox(value=False, label="Random seed")
                go = gr.Button("Interpolate", variant="primary")
            strip = gr.Gallery(label="Caption embedding interpolation (noise held fixed)", columns=8, format="png")
            go.click(backend.interpolate, [first, second, steps, interp_seed, interp_random], strip, api_name="interpolate")
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo
