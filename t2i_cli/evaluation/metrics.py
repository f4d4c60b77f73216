"""Sample-quality metrics on feature matrices (pure NumPy, float64).

- :func:`frechet_distance`: FID (Heusel et al. 2017) between two feature sets.
- :func:`kernel_inception_distance`: KID (Bińkowski et al. 2018), the unbiased MMD² with the cubic
  polynomial kernel, averaged over random subsets; it can be negative when the sets match.
- :func:`r_precision`: for each image, is its own caption ranked first among itself and
  ``candidates - 1`` random other captions (AttnGAN's R-precision with R = 1)?
- :func:`mean_pairwise_distance`: how far apart the images of one group are (diversity); 0 for a
  collapsed generator that draws the same image whatever the noise.
"""

from __future__ import annotations

import numpy as np


def _mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError("features must be (N, D) with N >= 2")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||μa - μb||² + Tr(Σa + Σb - 2 (Σa Σb)^½).

    Tr((Σa Σb)^½) is computed as the sum of the square roots of the eigenvalues of the symmetric
    matrix Σa^½ Σb Σa^½ (which has the same eigenvalues), so no complex sqrtm is involved.
    """
    mu_a, cov_a = _mean_cov(a)
    mu_b, cov_b = _mean_cov(b)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = x.shape[0], y.shape[0]
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, standard deviation) of the unbiased MMD² over ``subsets`` random subsets."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    rng = np.random.default_rng(seed)
    values = [
        _unbiased_mmd2(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def r_precision(
    image_embeddings: np.ndarray, caption_embeddings: np.ndarray, *, candidates: int = 100, seed: int = 0
) -> float:
    """Share of rows whose own caption (row i of ``caption_embeddings``) scores strictly highest,
    by cosine similarity, among itself and ``candidates - 1`` captions of other rows drawn at random."""
    images = _normalised(image_embeddings)
    captions = _normalised(caption_embeddings)
    count = len(images)
    if count != len(captions) or count < candidates:
        raise ValueError(f"R-precision needs matching rows and at least {candidates} of them, got {count}")
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(count):
        others = rng.choice(count - 1, candidates - 1, replace=False)
        others += others >= i  # skip row i itself
        own = images[i] @ captions[i]
        hits += bool(own > (captions[others] @ images[i]).max())
    return hits / count


def other_captions_embeddings(embeddings: np.ndarray, counts: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """Per image, the mean of its unit caption embeddings other than the picked one: an "image
    encoder" that knows everything the image's other captions say. Its R-precision shows how far
    captions alone tell the split's images apart (many flower captions fit many flowers), which
    puts the learned encoder's figures in scale. An image with one caption gets a zero row (a miss).

    ``embeddings`` (N, C, D) padded, ``counts`` (N,) real captions per image, ``picked`` (N,)."""
    units = _normalised(embeddings.reshape(-1, embeddings.shape[-1])).reshape(embeddings.shape)
    keep = np.arange(embeddings.shape[1])[None, :] < np.asarray(counts)[:, None]
    keep[np.arange(len(keep)), picked] = False
    totals = (units * keep[..., None]).sum(axis=1)
    return totals / np.maximum(keep.sum(axis=1, keepdims=True), 1)


def pairwise_spreads(features: np.ndarray) -> np.ndarray:
    """Per group, the mean Euclidean distance over all pairs within it: ``(G,)``.

    ``features`` (K, D) for one group of K >= 2 or (G, K, D) for G groups of K."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1] < 2:
        raise ValueError("features must be (K, D) or (G, K, D) with K >= 2")
    # Differences rather than the |a|² + |b|² - 2ab expansion, which cancels badly for near-equal
    # rows: a collapsed generator must come out as 0, not as the rounding noise of 2048-d norms.
    rows, cols = np.triu_indices(x.shape[1], k=1)
    return np.linalg.norm(x[:, rows] - x[:, cols], axis=-1).mean(axis=1)


def mean_pairwise_distance(features: np.ndarray) -> float:
    """:func:`pairwise_spreads` averaged over the groups (every group has the same size, so each
    counts the same)."""
    return float(pairwise_spreads(features).mean())


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
