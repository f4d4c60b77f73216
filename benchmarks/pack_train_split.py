"""Carry a data file's train split to the device machine, and rebuild it there.

The device tool sends at most 64 MiB with the work tree, and flowers.h5 is 84 MB (HDF5 keeps a
group of five datasets per image). The train split alone, packed as one compressed .npz of JPEG
bytes, captions, classes and the embeddings exactly as stored (float16), is 35 MB:

    python benchmarks/pack_train_split.py pack flowers.h5 .devcarry/train.npz     # here
    python benchmarks/pack_train_split.py unpack .devcarry/train.npz flowers.h5   # there

``unpack`` writes a t2i data file with the same train split (same names, JPEG bytes, captions,
classes, class table and embeddings; valid and test empty) through t2i's own atomic writer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from t2i_cli.data.h5 import CaptionImageFile, CaptionImageWriter, Example  # noqa: E402
from t2i_cli.errors import T2IError  # noqa: E402
from t2i_cli.text.encoder import EncoderIdentity  # noqa: E402

SPLIT = "train"


def pack(source: Path, packed: Path) -> None:
    jpegs, captions, counts, class_names, embeddings = [], [], [], [], []
    with CaptionImageFile(source) as data:  # refuses a missing or foreign file in one line
        encoder, image_size, classes = data.encoder, data.image_size or 0, data.classes
        stored_dtype = data.stored_embedding_dtype  # the reader hands embeddings back as float32
        names = data.names(SPLIT)
        if not names:
            raise T2IError(f"{source} has no {SPLIT} images")
        for name in names:
            example = data.example(SPLIT, name)
            jpegs.append(np.frombuffer(example.jpeg, np.uint8))
            captions += example.captions
            counts.append(len(example.captions))
            class_names.append(example.class_name or "")
            embeddings.append(np.asarray(example.embeddings).astype(stored_dtype))
    if any("\n" in caption for caption in captions):
        raise SystemExit("a caption holds a line break: this packing joins captions with them")
    packed.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        packed, names=np.array(names), jpeg=np.concatenate(jpegs), jpeg_lengths=np.array([len(j) for j in jpegs]),
        captions=np.array("\n".join(captions)), counts=np.array(counts), class_names=np.array(class_names),
        classes=np.array(classes), embeddings=np.concatenate(embeddings),
        encoder=np.array(encoder.to_json()), image_size=np.array(image_size),
    )
    print(f"packed {len(names)} {SPLIT} images, {len(captions)} captions ({stored_dtype} embeddings) into {packed}: "
          f"{packed.stat().st_size / 1e6:.1f} MB")


def unpack(packed: Path, target: Path) -> None:
    if not packed.is_file():
        raise T2IError(f"packed split {packed} does not exist (make it with: pack DATA.h5 {packed})")
    z = np.load(packed)  # each z[key] decompresses the whole array again: read every one once
    names, jpeg, classes, class_names, embeddings = z["names"], z["jpeg"], z["classes"], z["class_names"], z["embeddings"]
    captions = str(z["captions"]).split("\n")
    jpeg_at = np.concatenate([[0], np.cumsum(z["jpeg_lengths"])])
    caption_at = np.concatenate([[0], np.cumsum(z["counts"])])
    encoder = EncoderIdentity.from_json(str(z["encoder"]))
    with CaptionImageWriter(target, encoder=encoder, embedding_dtype=str(embeddings.dtype), image_size=int(z["image_size"]),
                            classes=[str(c) for c in classes], source=f"{packed.name} ({SPLIT} split)", overwrite=True) as writer:
        for i, name in enumerate(names):
            first, last = caption_at[i], caption_at[i + 1]
            writer.add(SPLIT, Example(name=str(name), jpeg=jpeg[jpeg_at[i]:jpeg_at[i + 1]].tobytes(), captions=captions[first:last],
                                      class_name=str(class_names[i]) or None, embeddings=embeddings[first:last]))
    print(f"wrote {target}: {writer.counts[SPLIT]} {SPLIT} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    try:
        (pack if args.action == "pack" else unpack)(args.source, args.target)
    except T2IError as exc:
        raise SystemExit(f"Error: {exc}") from None


if __name__ == "__main__":
    main()
