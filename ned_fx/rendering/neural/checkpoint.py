"""The neural renderer's checkpoint file (``actor.ckpt``): networks, optimiser state, step, configs -- no pickle.

Format, version 1: a NumPy ``.npz`` (read with ``allow_pickle=False``; torch's pickle-based ``torch.save`` is
never used, so loading a checkpoint cannot run code):

==========================  ==================================================================================
key                         meaning
==========================  ==================================================================================
``meta``                    JSON: format, version, step, ``renderer`` (:class:`NeuralRendererConfig`),
                            ``trainer`` (:class:`TrainerConfig`), ``encoding`` (the footage's
                            :class:`PlateEncoding`), ``history`` (losses per logged step), ``validation``,
                            ``footage`` (paths and frame counts), ``optim`` (the optimisers' param groups)
``generator/NAME``          the generator's parameters and buffers (``state_dict`` names)
``discriminator/NAME``      the mouth discriminator's
``optim_g/ID/NAME``         Adam state of the generator's parameter ID (``exp_avg``, ``exp_avg_sq``, ``step``)
``optim_d/ID/NAME``         the same for the discriminator
``colours``                 478x3 NMFC vertex colours (the actor's normalised mean face)
``mean_shape``              478x3 the mean shape they came from
``triangles``               Tx3 the triangulation the generator was trained with
==========================  ==================================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InputNotFoundError, InvalidParameterError, UnreadableMediaError
from .conditioning import PlateEncoding
from .config import NeuralRendererConfig, TrainerConfig

FORMAT = "ned_fx.neural_renderer"
VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A trained (or training) neural renderer.

    Attributes:
        renderer: the :class:`NeuralRendererConfig` it was built with (architecture and defaults).
        trainer: the :class:`TrainerConfig` of the run.
        step: optimisation steps done.
        generator, discriminator: parameter name -> float32 array.
        optim_g, optim_d: the optimisers' state as ``{"state": {id: {name: array}}, "param_groups": [...]}``.
        colours, mean_shape, triangles: the NMFC colours, the mean shape, the triangulation.
        encoding: the footage's plate encoding.
        history: logged losses (``{"step": …, "loss": …, …}`` per entry).
        validation: held-out reconstruction per validation (``{"step": …, "refine": …, "replace": …}``).
        footage: what it was trained on (``{"path": …, "frames": …}`` per clip).
    """

    renderer: NeuralRendererConfig
    trainer: TrainerConfig
    step: int
    generator: dict
    discriminator: dict
    optim_g: dict
    optim_d: dict
    colours: np.ndarray
    mean_shape: np.ndarray
    triangles: np.ndarray
    encoding: PlateEncoding = PlateEncoding()
    history: tuple = ()
    validation: tuple = ()
    footage: tuple = ()
    extra: dict = field(default_factory=dict)


def _flatten_optim(prefix: str, state: dict, arrays: dict) -> list:
    for pid, entries in state.get("state", {}).items():
        for name, value in entries.items():
            arrays[f"{prefix}/{int(pid)}/{name}"] = np.asarray(value, dtype=np.float32)
    return state.get("param_groups", [])


def write_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Raises:
        OutputWriteError: it could not be written (nothing half-written is left).
    """
    from ...errors import OutputWriteError
    from ...media import atomic_output

    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for name, value in ckpt.generator.items():
        arrays[f"generator/{name}"] = np.asarray(value)
    for name, value in ckpt.discriminator.items():
        arrays[f"discriminator/{name}"] = np.asarray(value)
    groups = {"g": _flatten_optim("optim_g", ckpt.optim_g, arrays),
              "d": _flatten_optim("optim_d", ckpt.optim_d, arrays)}
    arrays["colours"] = np.asarray(ckpt.colours, np.float32)
    arrays["mean_shape"] = np.asarray(ckpt.mean_shape, np.float32)
    arrays["triangles"] = np.asarray(ckpt.triangles, np.int32)
    meta = {"format": FORMAT, "version": VERSION, "step": int(ckpt.step), "renderer": ckpt.renderer.to_dict(),
            "trainer": ckpt.trainer.to_dict(), "encoding": ckpt.encoding.to_dict(), "history": list(ckpt.history),
            "validation": list(ckpt.validation), "footage": list(ckpt.footage), "optim": groups,
            "extra": ckpt.extra}
    arrays["meta"] = np.array(json.dumps(meta))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _unflatten_optim(prefix: str, data: dict, groups: list) -> dict:
    state: dict[int, dict] = {}
    for key, value in data.items():
        if key.startswith(prefix + "/"):
            _, pid, name = key.split("/", 2)
            state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": groups}


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Raises:
        InputNotFoundError: no such file. UnreadableMediaError: not a neural renderer checkpoint, or one of
            another format version (the message says which).
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"neural renderer checkpoint not found: {path} (train one with "
                                 f"`ned-fx train-renderer FOOTAGE -o {path.name}`)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        meta = json.loads(str(data.pop("meta")))
    except (OSError, ValueError, KeyError) as exc:
        raise UnreadableMediaError(f"{path} is not a neural renderer checkpoint: {exc}") from None
    if meta.get("format") != FORMAT:
        raise UnreadableMediaError(f"{path} is not a neural renderer checkpoint (format {meta.get('format')!r}, "
                                   f"expected {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise UnreadableMediaError(f"{path} is a neural renderer checkpoint of version {meta.get('version')}; this "
                                   f"ned_fx reads version {VERSION}: train it again")
    try:
        renderer = NeuralRendererConfig.from_dict(meta["renderer"])
        # a run written before identity refine pairs existed trained (and resumes) without them
        trainer = TrainerConfig.from_dict({"identity_pairs": 0, **meta["trainer"]})
        encoding = PlateEncoding(**meta["encoding"])
    except (KeyError, TypeError, InvalidParameterError) as exc:
        raise UnreadableMediaError(f"{path} holds an invalid configuration: {exc}") from None
    missing = [k for k in ("colours", "mean_shape", "triangles") if k not in data]
    if missing:
        raise UnreadableMediaError(f"{path} is incomplete (missing {', '.join(missing)})")
    groups = meta.get("optim", {})
    return Checkpoint(
        renderer=renderer, trainer=trainer, step=int(meta.get("step", 0)),
        generator={k[10:]: v for k, v in data.items() if k.startswith("generator/")},
        discriminator={k[14:]: v for k, v in data.items() if k.startswith("discriminator/")},
        optim_g=_unflatten_optim("optim_g", data, groups.get("g", [])),
        optim_d=_unflatten_optim("optim_d", data, groups.get("d", [])),
        colours=data["colours"], mean_shape=data["mean_shape"], triangles=data["triangles"], encoding=encoding,
        history=tuple(meta.get("history", ())), validation=tuple(meta.get("validation", ())),
        footage=tuple(meta.get("footage", ())), extra=dict(meta.get("extra", {})))


def load_state(module, arrays: dict, what: str, path: str | Path = "the checkpoint") -> None:
    """Copy stored arrays into a torch module's state, by name; refuse any mismatch (never a silent skip).

    Raises:
        UnreadableMediaError: missing, unexpected or mis-shaped entries (the first few are named).
    """
    import torch

    own = module.state_dict()
    missing = [k for k in own if k not in arrays]
    extra = [k for k in arrays if k not in own]
    shapes = [k for k in own if k in arrays and tuple(own[k].shape) != tuple(np.shape(arrays[k]))]
    if missing or extra or shapes:
        raise UnreadableMediaError(f"{path}: the {what} does not match its configuration (missing {missing[:3]}, "
                                   f"unexpected {extra[:3]}, other shapes {shapes[:3]})")
    module.load_state_dict({k: torch.as_tensor(np.asarray(arrays[k])).to(own[k].dtype) for k in own})


def optim_to_torch(state: dict) -> dict:
    """An optimiser state read from a checkpoint, as torch tensors (for ``optimizer.load_state_dict``)."""
    import torch

    return {"state": {pid: {name: torch.as_tensor(np.asarray(v)) for name, v in entries.items()}
                      for pid, entries in state["state"].items()},
            "param_groups": state["param_groups"]}


def optim_to_arrays(state: dict) -> dict:
    """A torch optimiser's ``state_dict()`` as arrays + JSON-able groups (what :class:`Checkpoint` holds)."""
    return {"state": {int(pid): {name: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v))
                                 for name, v in entries.items()} for pid, entries in state["state"].items()},
            "param_groups": [{k: v for k, v in g.items()} for g in state["param_groups"]]}
