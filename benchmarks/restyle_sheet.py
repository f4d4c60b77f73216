"""The restyle sheet of the README and weights/README.md, from the shipped generator and style encoder.

    python benchmarks/restyle_sheet.py flowers.h5 weights/flowers-gan-restyle.png

Test-split photos (classes neither model saw), one of each dominant colour (the middle one of the
split in file order), each redrawn with its own first caption and restyled with "this flower has
<colour> petals" for three other colours, all x2 (FSRCNN).
"""

import sys
from t2i_cli.data.split import InMemorySplit
from t2i_cli.evaluation.colour import dominant_colours
from t2i_cli.grid import captioned_grid, save_image, to_pil
from t2i_cli.pipeline import T2IPipeline

data, out = sys.argv[1], sys.argv[2]
pipe = T2IPipeline.from_pretrained(None, device="cpu")
split = InMemorySplit.load(data, "test", image_size=64)
colours = dominant_colours(split.images.numpy())
targets = ["yellow", "white", "pink", "purple"]
picked = []
for want in ("pink", "yellow", "white", "purple", "red", "orange"):  # one photo of each colour
    rows = [i for i, c in enumerate(colours) if c == want]
    if rows:
        picked.append(rows[len(rows) // 2])
picked = picked[:4]
rows = []
for row in picked:
    photo = to_pil(split.images[row:row + 1])[0]
    own = split.captions[row][0]
    captions = [f"this flower has {c} petals" for c in targets if c != colours[row]][:3]
    result = pipe.restyle(photo, captions, photo_caption=own, upscale=2)
    images = [result.upscaled.photo, result.upscaled.reconstruction, *result.upscaled.restyled]
    label = f"{split.names[row]} ({colours[row]}): photo | redrawn as its caption \"{own}\" | " + " | ".join(c.replace("this flower has ", "") for c in captions)
    rows.append((label, images))
save_image(captioned_grid(rows, caption_width=300), out)
print("rows:", [(split.names[r], colours[r]) for r in picked])
