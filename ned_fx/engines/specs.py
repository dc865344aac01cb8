"""What every engine is, as data: its torch module, its named inputs and outputs with their dynamic axes, an
example feed, the TensorRT profile ranges of its non-batch axes, the precisions it may be built in and the
tolerances its compiled forms are held to.

Six engines: the tracker's ``face_detector``, ``face_mesh`` and ``iris``, the ``manipulator``, the
``geometry_renderer`` and the ``neural_renderer``'s generator. One recipe (``engines/export_onnx.py``,
``ned-fx engines build``) exports them all.

Per-engine weights: most engines load fixed weights (the tracker's) or have none. The neural renderer is trained
per actor, so its weights are a file the caller names: every function that makes a spec takes ``weights``, a
``{engine: file}`` mapping (``ned-fx engines build|list|verify --checkpoint ACTOR.ckpt`` passes
``{"neural_renderer": ACTOR.ckpt}``). Without one, the neural renderer's spec is the default
:class:`~ned_fx.rendering.neural.NeuralRendererConfig`'s generator with fixed-seed random weights
(:data:`NEURAL_SEED`): enough to export, check parity and build the graph, not to render a face.

Shapes: an ``int`` is a fixed size, a ``str`` names a dynamic axis (``"batch"`` is the batch everywhere).
Feeds are ``{input name: numpy array}`` in the dtypes stated here (float32, int32).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..errors import InvalidParameterError

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output.

    Attributes:
        name: the ONNX / TensorRT tensor name.
        shape: sizes; a ``str`` names a dynamic axis (``"batch"``, ``"frames"``, ``"height"`` …).
        dtype: ``"float32"`` or ``"int32"``.
        doc: what it holds (units, coordinates).
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    doc: str = ""

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {k: d for k, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """The shape with its named axes replaced by ``sizes``."""
        return tuple(int(sizes[d]) if isinstance(d, str) else int(d) for d in self.shape)


@dataclass(frozen=True)
class EngineSpec:
    """One engine.

    Attributes:
        name: its name (files, manifest, CLI).
        title: one line for listings.
        build: makes the torch module (eval mode, float32, CPU); loads weights where it has any.
        inputs, outputs: the named tensors, in the module's argument / return order.
        example: ``example(batch, seed)`` -> a plausible feed (seeded; tracing, parity checks, profiles).
        dims: ``{axis name: (min, opt, max)}`` for every dynamic axis but ``batch``: the TensorRT profile range.
        precisions: the TensorRT precisions it may be built in (the first is used when another is asked).
        tolerance: ``{precision: {output: max absolute error}}`` a compiled engine must meet against PyTorch
            float32 on the same feed (units per output in ``outputs[...].doc``).
        sources: the modules whose code defines the graph: a change there makes built engines stale.
        settings: the configuration baked into the graph (part of the weights hash).
        batch_per_frame: engine batch items per video frame (the iris net sees both eyes: 2).
        weights: returns the weight files the module loads (hashed into the weights hash; none for engines
            whose tensors follow from ``settings`` and code).
        static: every shape inside the graph follows from the input shapes (CUDA graphs can capture it); the
            renderer's is data-dependent (it works on the cells inside the openings).
        takes_weights: what a weights file given for this engine is (``weights={name: file}``); empty for
            engines whose weights are fixed.
    """

    name: str
    title: str
    build: Callable[[], "object"]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    example: Callable[[int, int], Feeds]
    dims: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    precisions: tuple[str, ...] = ("fp16", "fp32")
    tolerance: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    settings: Mapping[str, object] = field(default_factory=dict)
    batch_per_frame: int = 1
    weights: Callable[[], tuple[Path, ...]] = tuple
    static: bool = True
    takes_weights: str = ""

    # -- the single-input view the first version of this module offered (kept for its callers) --------------
    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def input_shape(self) -> tuple[int | str, ...]:
        """The first input's shape without the batch axis."""
        return self.inputs[0].shape[1:]

    def build_precision(self, asked: str) -> str:
        """The precision an engine is really built in when ``asked`` is requested."""
        return asked if asked in self.precisions else self.precisions[0]

    def feed_args(self, feeds: Feeds) -> list[np.ndarray]:
        """The feed's arrays in input order, checked against the declared names and dtypes.

        Raises:
            InvalidParameterError: a missing or unknown input, or a wrong dtype / rank.
        """
        unknown = sorted(set(feeds) - set(self.input_names))
        missing = [n for n in self.input_names if n not in feeds]
        if unknown or missing:
            raise InvalidParameterError(f"{self.name} takes inputs {', '.join(self.input_names)}; "
                                        f"missing {missing or 'none'}, unknown {unknown or 'none'}")
        out = []
        for t in self.inputs:
            a = np.asarray(feeds[t.name])
            if a.dtype != np.dtype(t.dtype) or a.ndim != len(t.shape):
                raise InvalidParameterError(f"{self.name}.{t.name} must be {t.dtype} with shape {t.shape}, got "
                                            f"{a.dtype} {a.shape}")
            out.append(a)
        return out


# ---- the five engines ---------------------------------------------------------------------------------------------

def _uniform(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _tracker_spec(name: str) -> EngineSpec:
    from ..tracking import engine as te

    size = {"face_detector": te.DETECTOR_SIZE, "face_mesh": te.MESH_SIZE, "iris": te.IRIS_SIZE}[name]
    cls = {"face_detector": te.FaceDetectorEngine, "face_mesh": te.FaceMeshEngine, "iris": te.IrisEngine}[name]
    in_name = "images" if name == "face_detector" else "crops"
    image = TensorSpec(in_name, ("batch", 3, size, size), doc=f"RGB in 0..1, {size}x{size}")
    outputs = {
        "face_detector": (TensorSpec("points", ("batch", 896, 8, 2), doc="0..1 of the input (box, 6 keypoints)"),
                          TensorSpec("prob", ("batch", 896), doc="probability")),
        "face_mesh": (TensorSpec("landmarks", ("batch", 468, 3), doc="crop pixels (of 192)"),
                      TensorSpec("score", ("batch",), doc="face presence probability")),
        "iris": (TensorSpec("contour", ("batch", 71, 3), doc="crop pixels (of 64)"),
                 TensorSpec("iris", ("batch", 5, 3), doc="crop pixels (of 64)")),
    }[name]
    # fp32: onnxruntime / TensorRT float32 against PyTorch; fp16: half-precision engines (points in their units)
    tolerance = {
        "face_detector": {"fp32": {"points": 1e-4, "prob": 1e-4}, "fp16": {"points": 5e-3, "prob": 2e-2}},
        "face_mesh": {"fp32": {"landmarks": 2e-3, "score": 1e-4}, "fp16": {"landmarks": 1.0, "score": 2e-2}},
        "iris": {"fp32": {"contour": 2e-3, "iris": 2e-3}, "fp16": {"contour": 0.5, "iris": 0.5}},
    }[name]
    titles = {"face_detector": "BlazeFace short-range detector (128x128)",
              "face_mesh": "468-point face mesh (192x192 crops)",
              "iris": "eye contour and iris (64x64 crops, both eyes)"}
    return EngineSpec(
        name=name, title=titles[name], build=lambda: cls(te.load_graph(name)).eval(), inputs=(image,),
        outputs=outputs, example=lambda batch, seed: {in_name: _uniform((batch, 3, size, size), seed)},
        tolerance=tolerance, sources=("ned_fx.tracking.engine", "ned_fx.tracking.graph_net",
                                      "ned_fx.tracking.geometry"),
        settings={"size": size}, batch_per_frame=2 if name == "iris" else 1, weights=lambda: (_weights(name),))


def _weights(name: str) -> Path:
    from ..tracking import weights

    return weights.require(name)


def _manipulator_spec() -> EngineSpec:
    from ..manipulation import ManipulatorConfig
    from ..manipulation.expression import AU_NAMES

    c = ManipulatorConfig()
    k = len(AU_NAMES)

    def build():
        from ..manipulation.engine import ManipulatorEngine

        return ManipulatorEngine(c.default_fps, c.state_smoothing, c.offset_smoothing,
                                 c.swing_smoothing).float().eval()

    def example(batch: int, seed: int) -> dict[str, np.ndarray]:
        from ..manipulation.engine import example_inputs

        names = ("params", "style", "weights", "gate", "region")
        return {n: t.numpy() for n, t in zip(names, example_inputs(batch, 48 + seed % 31, seed, k))}

    per_frame = ("batch", "frames", k)
    return EngineSpec(
        name="manipulator", title=f"AU manipulator ({k} action units over a window of frames, "
        f"{c.default_fps:g} fps timing)", build=build,
        inputs=(TensorSpec("params", per_frame, doc="source AU activations"),
                TensorSpec("style", per_frame, doc="target pattern, intensity applied"),
                TensorSpec("weights", ("batch", "frames", 1), doc="intensity 0..1.5"),
                TensorSpec("gate", ("batch", "frames", 1), doc="speech gate 0..1"),
                TensorSpec("region", (k,), doc="per-AU region weight 0..1")),
        outputs=(TensorSpec("target", per_frame, doc="target AU activations"),),
        example=example, dims={"frames": (1, 250, 2000)},
        tolerance={"fp32": {"target": 1e-5}, "fp16": {"target": 5e-3}},
        sources=("ned_fx.manipulation.engine", "ned_fx.manipulation.rule", "ned_fx.manipulation.expression"),
        settings={"fps": c.default_fps, "state_smoothing": c.state_smoothing,
                  "offset_smoothing": c.offset_smoothing, "aus": list(AU_NAMES)})


@functools.lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """A neutral, frontal 478x3 face in the pixels of a 192x192 crop: the face-mesh net's answer to a mid-grey
    crop (its prior). Deterministic for the installed weights; used to make the renderer's example feeds.

    Raises:
        WeightsMissingError: the tracker's weights are not installed.
    """
    import torch

    from ..tracking.engine import FaceMeshEngine, load_graph

    with torch.no_grad():
        lm, _ = FaceMeshEngine(load_graph("face_mesh")).eval()(torch.full((1, 3, 192, 192), 0.5))
    mesh = lm[0].double().numpy()
    out = np.concatenate([mesh, np.repeat(mesh[[468 - 1]], 10, axis=0)])      # iris rows: unused by the renderer
    from .. import topology as T

    for e, (a, b) in enumerate(((33, 133), (362, 263))):
        out[T.NUM_MESH + 5 * e: T.NUM_MESH + 5 * e + 5] = (mesh[a] + mesh[b]) / 2
    return out


def renderer_feed(src: np.ndarray, dsts: list[np.ndarray], images: np.ndarray, mesh, config=None) -> dict:
    """The renderer engine's feed for a batch of one shot's regions.

    Args:
        src: Bx478x2+ source landmarks in region pixels; dsts: B target landmark arrays (same);
        images: BxCxHxW float32 regions; mesh: the shot's :class:`~ned_fx.rendering.RenderMesh`;
        config: the :class:`~ned_fx.rendering.RendererConfig` (field grid size).

    Returns:
        ``{images, src, dst, labels, triangles, outline}`` numpy arrays (float32 / int32).
    """
    from ..rendering import RendererConfig, field_grid_size, rasterize_labels

    config = config or RendererConfig()
    _, _, h, w = images.shape
    grid = field_grid_size(h, w, config.field_cells)
    labels = np.stack([rasterize_labels(d, mesh, (h, w), grid) for d in dsts]).astype(np.int32)
    return {"images": np.ascontiguousarray(images, np.float32),
            "src": np.ascontiguousarray(np.asarray(src)[..., :2], np.float32),
            "dst": np.ascontiguousarray(np.stack([np.asarray(d)[:, :2] for d in dsts]), np.float32),
            "labels": labels, "triangles": np.asarray(mesh.triangles, np.int32),
            "outline": np.unique(np.asarray(mesh.outer_edges).reshape(-1)).astype(np.int32)}


def _renderer_example(batch: int, seed: int) -> dict[str, np.ndarray]:
    """A canonical face in a plate-like region (smooth texture, 0..255) with seeded expression edits."""
    from .. import topology as T
    from ..rendering import build_render_mesh

    rng = np.random.default_rng(seed)
    face = canonical_face()
    scale = 1.5 + 0.25 * (seed % 3)
    lo, hi = face[: T.NUM_MESH, :2].min(0) * scale, face[: T.NUM_MESH, :2].max(0) * scale
    pad = 0.25 * float((hi - lo).max())
    src = face.copy()
    src[:, :2] = face[:, :2] * scale - lo + pad
    src[:, 2] *= scale
    w, h = (int(np.ceil(v + 2 * pad)) for v in (hi - lo))
    mesh = build_render_mesh(src)
    iod = float(np.linalg.norm(src[T.EYE_OUTER_RIGHT, :2] - src[T.EYE_OUTER_LEFT, :2]))
    dsts = []
    for _ in range(batch):
        dst = src.copy()
        for centre in (61, 291, 105, 334, 14, 159, 386):     # mouth corners, brows, lower lip, upper lids
            d = np.linalg.norm(src[:, :2] - src[centre, :2], axis=1)
            move = rng.normal(0.0, 0.03 * iod, 2)
            dst[:, :2] += np.exp(-(d / (0.15 * iod)) ** 2)[:, None] * move
        dsts.append(dst)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = np.empty((batch, 3, h, w), np.float32)
    for b in range(batch):
        for c in range(3):
            fx, fy, ph = rng.uniform(0.02, 0.2, 2).tolist() + [rng.uniform(0, 6.3)]
            images[b, c] = 128 + 60 * np.sin(fx * xx + ph) * np.cos(fy * yy) + rng.normal(0, 8, (h, w))
    return renderer_feed(np.stack([src] * batch), dsts, images, mesh)


def _renderer_engine(cfg):
    from .modules import RendererEngine

    return RendererEngine(cfg).eval()


def _renderer_spec() -> EngineSpec:
    from ..rendering import RendererConfig

    cfg = RendererConfig()
    img = ("batch", "channels", "height", "width")
    return EngineSpec(
        name="geometry_renderer", title="geometry renderer (mesh warp of a face region, any resolution)",
        build=lambda: _renderer_engine(cfg),
        inputs=(TensorSpec("images", img, doc="face regions in the plate's values"),
                TensorSpec("src", ("batch", 478, 2), doc="source landmarks, region pixels"),
                TensorSpec("dst", ("batch", 478, 2), doc="target landmarks, region pixels"),
                TensorSpec("labels", ("batch", "grid_h", "grid_w"), "int32", doc="rasterize_labels of dst"),
                TensorSpec("triangles", ("triangles", 3), "int32", doc="the shot's render mesh"),
                TensorSpec("outline", ("outline",), "int32", doc="the mesh's outline vertices")),
        outputs=(TensorSpec("rendered", img, doc="rendered regions, plate values (0..255 in checks)"),),
        example=_renderer_example,
        dims={"channels": (1, 3, 4), "height": (16, 512, 2560), "width": (16, 512, 2560),
              "grid_h": (2, 192, 1024), "grid_w": (2, 192, 1024), "triangles": (1, 860, 1200),
              "outline": (3, 36, 120)},
        # pixel coordinates up to thousands of pixels do not survive half precision: fp32 only
        precisions=("fp32",), tolerance={"fp32": {"rendered": 0.05}}, static=False,
        sources=("ned_fx.rendering.geometry_module", "ned_fx.rendering.field", "ned_fx.rendering.mesh",
                 "ned_fx.engines.modules"),
        settings={k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k != "device"})


#: the seed of the neural renderer's stand-in weights when no checkpoint is given
NEURAL_SEED = 0


def _checkpoint_config(path: Path):
    """The :class:`NeuralRendererConfig` stored in a checkpoint, read from its ``meta`` entry alone (the arrays
    stay on disk); anything unexpected is left to :func:`read_checkpoint`, which names the problem."""
    import json

    from ..rendering.neural import NeuralRendererConfig
    from ..rendering.neural.checkpoint import FORMAT, VERSION, read_checkpoint

    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
        if meta.get("format") == FORMAT and meta.get("version") == VERSION:
            return NeuralRendererConfig.from_dict(meta["renderer"])
    except Exception:          # noqa: BLE001 -- read_checkpoint below raises the named error
        pass
    return read_checkpoint(path).renderer


def _neural_spec(checkpoint: str | Path | None = None) -> EngineSpec:
    """The neural renderer's generator: an actor's checkpoint, or (None) the default config, seeded weights."""
    from ..rendering.neural import NeuralRendererConfig
    from ..rendering.neural.config import ARCHITECTURE

    path = None if checkpoint is None else Path(checkpoint).expanduser()
    cfg = NeuralRendererConfig() if path is None else _checkpoint_config(path)
    channels = 7 * (1 + cfg.temporal_frames) + 4          # networks.input_channels, without importing torch
    size = cfg.crop_size

    def build():
        import torch

        from ..rendering.neural.networks import Generator

        if path is not None:
            from ..rendering.neural.export import build_generator

            return build_generator(path)[0].float().eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(NEURAL_SEED)
            return Generator(cfg).float().eval()

    def example(batch: int, seed: int) -> dict[str, np.ndarray]:
        # conditioning maps and the image in 0..1 (working space), known = 1, at the crop size
        x = _uniform((batch, channels, size, size), 1000 + seed)
        x[:, -1] = 1.0
        return {"inputs": x}

    img = ("batch", channels, "height", "width")
    out = ("batch", 3, "height", "width")
    step = 2 ** (cfg.levels + 1)
    lo, hi = min(size, 256), max(size, 512)
    return EngineSpec(
        name="neural_renderer",
        title=f"neural renderer generator ({size}px crops{'' if path else ', seeded stand-in weights'})",
        build=build,
        inputs=(TensorSpec("inputs", img, doc=f"conditioning maps, image, known (0..1; H, W multiples of {step})"),),
        outputs=(TensorSpec("image", out, doc="face crop in working space (0..1)"),),
        example=example, dims={"height": (lo, size, hi), "width": (lo, size, hi)},
        # fp32: onnxruntime / TensorRT float32; fp16: working-space 0..1 values, ~2/255 (unchecked on a GPU yet)
        precisions=("fp16", "fp32"), tolerance={"fp32": {"image": 1e-4}, "fp16": {"image": 1e-2}},
        sources=("ned_fx.rendering.neural.networks",),
        settings={**{k: getattr(cfg, k) for k in ARCHITECTURE},
                  "weights": "checkpoint" if path else f"random, seed {NEURAL_SEED}"},
        weights=(lambda: (path,)) if path is not None else tuple,
        takes_weights="the actor's neural renderer checkpoint (ned-fx train-renderer ... -o ACTOR.ckpt)")


ENGINE_NAMES = ("face_detector", "face_mesh", "iris", "manipulator", "geometry_renderer", "neural_renderer")
#: engines whose weights the caller names (``weights={name: file}``)
WEIGHTED_ENGINES = ("neural_renderer",)

Weights = Mapping[str, "str | Path"]


def check_weights(weights: Weights | None) -> dict[str, Path]:
    """Validate a ``{engine: weights file}`` mapping.

    Raises:
        InvalidParameterError: an engine that takes no weights file (the message lists those that do).
        InputNotFoundError: a file that does not exist.
    """
    from ..errors import InputNotFoundError

    weights = dict(weights or {})
    bad = [n for n in weights if n not in WEIGHTED_ENGINES]
    if bad:
        raise InvalidParameterError(f"engine(s) {', '.join(map(repr, bad))} take no weights file; engines that "
                                    f"do: {', '.join(WEIGHTED_ENGINES)}")
    out = {}
    for name, file in weights.items():
        if file is None:
            continue
        path = Path(file).expanduser()
        if not path.is_file():
            raise InputNotFoundError(f"{name} weights not found: {path}")
        out[name] = path
    return out


def engine_specs(weights: Weights | None = None) -> dict[str, EngineSpec]:
    """Every engine, by name (in pipeline order).

    Args:
        weights: ``{engine: weights file}`` for the engines that take one (:data:`WEIGHTED_ENGINES`).
    """
    files = check_weights(weights)
    specs = {n: _tracker_spec(n) for n in ENGINE_NAMES[:3]}
    specs["manipulator"] = _manipulator_spec()
    specs["geometry_renderer"] = _renderer_spec()
    specs["neural_renderer"] = _neural_spec(files.get("neural_renderer"))
    return specs


def get_spec(name: str, weights: Weights | None = None) -> EngineSpec:
    """The spec of engine ``name``.

    Args:
        weights: ``{engine: weights file}``; only ``weights[name]`` matters here (others are validated).

    Raises:
        InvalidParameterError: unknown engine (the message lists the valid names), or weights for an engine
            that takes none. InputNotFoundError, UnreadableMediaError: the weights file cannot be read.
    """
    if name not in ENGINE_NAMES:
        raise InvalidParameterError(f"unknown engine {name!r}; engines: {', '.join(ENGINE_NAMES)}")
    files = check_weights(weights)
    if name == "neural_renderer":
        return _neural_spec(files.get(name))
    return engine_specs()[name]


def check_names(names) -> tuple[str, ...]:
    """Validate engine names (None or empty: all of them).

    Raises:
        InvalidParameterError: an unknown name (the message lists the valid ones).
    """
    if not names:
        return ENGINE_NAMES
    bad = [n for n in names if n not in ENGINE_NAMES]
    if bad:
        raise InvalidParameterError(f"unknown engine(s) {', '.join(map(repr, bad))}; engines: "
                                    f"{', '.join(ENGINE_NAMES)}")
    return tuple(dict.fromkeys(names))


# ---- fingerprints: what makes a built engine stale ---------------------------------------------------------------

def weights_hash(spec: EngineSpec) -> str:
    """sha256 over the engine's baked settings and its weight files' bytes (no module is built).

    Raises:
        WeightsMissingError: the tracker's weights are not installed.
    """
    import json

    h = hashlib.sha256(json.dumps({"engine": spec.name, "settings": spec.settings}, sort_keys=True,
                                  default=str).encode())
    for path in spec.weights():
        h.update(Path(path).name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def source_hash(spec: EngineSpec) -> str:
    """sha256 over the source files of the modules that define the engine's graph."""
    import importlib.util

    h = hashlib.sha256()
    for module in sorted(spec.sources):
        found = importlib.util.find_spec(module)
        origin = Path(found.origin) if found and found.origin else None
        h.update(module.encode())
        h.update(origin.read_bytes() if origin and origin.is_file() else b"?")
    return h.hexdigest()
