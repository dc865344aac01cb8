"""ONNX export of a trained generator, and its parity check against PyTorch in onnxruntime.

The exported graph is the generator alone (:class:`~ned_fx.rendering.neural.networks.Generator`): input
``inputs`` Bx(C)xHxW (conditioning images, image, known: see :mod:`.networks`), output ``image`` Bx3xHxW, opset
18, dynamic batch, height and width (multiples of ``2 ** (levels + 1)``). Rasterising the conditioning images
stays outside the graph, as the geometry renderer's label maps do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import OutputWriteError
from .checkpoint import Checkpoint, load_state, read_checkpoint
from .networks import Generator, input_channels

OPSET = 18
INPUT_NAME, OUTPUT_NAME = "inputs", "image"


def build_generator(checkpoint: Checkpoint | str | Path):
    """The checkpoint's generator as an eval-mode float32 CPU module."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else read_checkpoint(checkpoint)
    gen = Generator(ckpt.renderer)
    load_state(gen, ckpt.generator, "generator")
    return gen.eval(), ckpt


def example_inputs(checkpoint: Checkpoint, batch: int = 1, seed: int = 0, size: int | None = None) -> np.ndarray:
    """A plausible random feed: conditioning channels in 0..1, an image, known = 1 (float32)."""
    cfg = checkpoint.renderer
    s = size or cfg.crop_size
    rng = np.random.default_rng(seed)
    x = rng.random((batch, input_channels(cfg), s, s), dtype=np.float32)
    x[:, -1] = 1.0
    return x


def export_onnx(checkpoint: Checkpoint | str | Path, path: str | Path, opset: int = OPSET) -> Path:
    """Export a checkpoint's generator to ONNX, atomically.

    Args:
        checkpoint: a checkpoint path or :class:`Checkpoint`; path: the ``.onnx`` file; opset: ONNX opset.

    Returns:
        ``path``.

    Raises:
        InputNotFoundError, UnreadableMediaError: the checkpoint cannot be read.
        OutputWriteError: the file could not be written, or the exporter failed (nothing is left behind).
    """
    import torch

    from ...media import atomic_output

    gen, ckpt = build_generator(checkpoint)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    example = torch.from_numpy(example_inputs(ckpt, batch=2))
    axes = {0: "batch", 2: "height", 3: "width"}
    with atomic_output(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(gen, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, opset_version=opset, dynamo=False)
    return path


def onnx_parity(checkpoint: Checkpoint | str | Path, path: str | Path, batch: int = 2, seed: int = 0,
                size: int | None = None) -> float:
    """Largest absolute difference between onnxruntime (CPU) and PyTorch on the same random feed.

    Args:
        checkpoint: the checkpoint exported; path: its ``.onnx``; batch, seed, size: the feed (size: crop side,
            default the checkpoint's; any multiple of ``2 ** (levels + 1)`` runs).
    """
    import onnxruntime as ort
    import torch

    gen, ckpt = build_generator(checkpoint)
    feed = example_inputs(ckpt, batch, seed, size)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: feed})[0]
    with torch.no_grad():
        ref = gen(torch.from_numpy(feed)).numpy()
    return float(np.abs(got.astype(np.float64) - ref).max())
