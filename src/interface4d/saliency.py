"""The trained networks at inference, and their saliency: where in the input the output is
decided. One place for evaluation and predict.

:func:`load_model` reads a saved network; :func:`saliency` is |d output / d input| of each
example (evaluation's maps, Fig. 3b-d); :func:`output_and_gradient` runs a network on a batch and takes the gradient of one output with
respect to each example's input; :func:`saliency_map_and_profile` integrates its magnitude into a
k x k detector map and a profile along the scan; :func:`plot_saliency` draws both.

TensorFlow and matplotlib are imported only inside the functions that use them; the figure is
object-oriented matplotlib (``Figure``, no ``pyplot``, no global backend change).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from interface4d.modelcard import ModelCard

BATCH = 64


def load_model(path: str | Path):
    """A trained network (``.keras``) for inference (Keras imported here, not at import)."""
    from interface4d.model import load

    return load(path)


def saliency(model, x: np.ndarray, output_index: int | None = None) -> np.ndarray:
    """|d output / d input| for each example of ``x`` (B, nx, k, k) -> (B, nx, k, k).

    ``output_index``: the class whose probability is differentiated (classifier); ``None``
    takes each example's predicted class, or the single output of a regressor.
    """
    import tensorflow as tf

    xt = tf.constant(np.asarray(x, np.float32)[..., None])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = model(xt, training=False)
        if out.shape[-1] == 1:
            score = out[:, 0]
        else:
            cls = (
                tf.argmax(out, axis=-1, output_type=tf.int32)
                if output_index is None
                else tf.fill([tf.shape(out)[0]], int(output_index))
            )
            score = tf.gather(out, cls, axis=1, batch_dims=1)
    grad = tape.gradient(score, xt)
    return np.abs(np.asarray(grad)[..., 0])


def output_and_gradient(model, x: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Network output for a batch ``x`` (B, nx, k, k) and the gradient of output ``index`` of
    each example with respect to that example's input (B, nx, k, k), without dropout."""
    import tensorflow as tf

    outs, grads = [], []
    for i in range(0, x.shape[0], BATCH):
        xt = tf.convert_to_tensor(x[i : i + BATCH, ..., None], dtype=tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = model(xt, training=False)
            target = tf.reduce_sum(out[:, index])
        grads.append(tape.gradient(target, xt).numpy()[..., 0])
        outs.append(np.asarray(out))
    return np.concatenate(outs), np.concatenate(grads)


def saliency_map_and_profile(grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|grad| (B, nx, k, k) integrated over the examples and the scan (k x k map) and over the
    examples and the detector (scan profile)."""
    a = np.abs(grad.astype(np.float64))
    return a.sum(axis=(0, 1)), a.sum(axis=(0, 2, 3))


def plot_saliency(
    out_png: Path, card: ModelCard, panels: Sequence[tuple[str, np.ndarray, np.ndarray]]
) -> None:
    """One row per network: the k x k saliency map (mrad axes, the bright-field disc dashed)
    and its profile along the scan; written as PNG and SVG."""
    from matplotlib.figure import Figure

    s, c, k = card.sampling, card.center, card.pattern_px
    extent = [
        (-c[0] - 0.5) * s[0],
        (k[0] - 1 - c[0] + 0.5) * s[0],
        (-c[1] - 0.5) * s[1],
        (k[1] - 1 - c[1] + 0.5) * s[1],
    ]
    x = card.scan_x
    fig = Figure(figsize=(11, 4.2 * len(panels)))
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for row, (title, smap, profile) in zip(axes, panels, strict=True):
        im = row[0].imshow(smap.T, origin="lower", extent=extent, cmap="magma")
        theta = np.linspace(0, 2 * np.pi, 200)
        r = float(card["semiangle_cutoff_mrad"])
        row[0].plot(r * np.cos(theta), r * np.sin(theta), "c--", lw=0.8)
        row[0].set_xlabel("k_x (mrad, along the growth direction)")
        row[0].set_ylabel("k_y (mrad)")
        row[0].set_title(f"{title}\n|gradient| summed over the scan")
        fig.colorbar(im, ax=row[0], shrink=0.8)
        row[1].plot(x, profile, "o-")
        row[1].axvline(0.0, color="k", ls=":", lw=0.8)
        row[1].set_xlabel("probe position from the interface (A)")
        row[1].set_ylabel("|gradient| summed over the detector")
        row[1].set_title(f"{title}\n|gradient| along the scan")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    fig.savefig(out_png.with_suffix(".svg"))
