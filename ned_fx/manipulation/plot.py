"""Curves of an edit: AU activations before (dashed) and after (solid) over the shot's frame numbers, one panel
per group of AUs that the edit changes, plus the intensity curve, so an artist sees what will change before
rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError, OutputWriteError
from .edited import EditedTrack
from .expression import AU_LABELS

#: Panels: (title, AU names).
GROUPS = (("Brows", ("AU1", "AU2", "AU4")), ("Eyes and cheeks", ("AU5", "AU6", "AU7", "AU45")),
          ("Nose and upper lip", ("AU9", "AU10")), ("Mouth corners", ("AU12", "AU14", "AU15", "AU20")),
          ("Lips and chin", ("AU16", "AU17", "AU23")), ("Speech channels", ("AU18", "AU24", "AU25", "AU26")))
#: Smallest change (activation units) that makes a group count as changed.
CHANGE = 0.01


def changed_groups(edited: EditedTrack, threshold: float = CHANGE) -> list[tuple[str, tuple[str, ...]]]:
    """The :data:`GROUPS` whose AUs the edit changes by more than ``threshold`` somewhere."""
    names = list(edited.au_names)
    diff = np.nan_to_num(np.abs(edited.au_target - edited.au_source))
    out = []
    for title, aus in GROUPS:
        idx = [names.index(a) for a in aus if a in names]
        if idx and diff[:, idx].max(initial=0.0) > threshold:
            out.append((title, aus))
    return out


def plot_activations(edited: EditedTrack, path: str | Path, title: str | None = None) -> Path:
    """Write the before/after AU curves of an edit as a PNG, atomically.

    Args:
        edited: the edit; path: ``.png`` to write; title: figure title (default: the edit's instruction).

    Returns:
        the path written.

    Raises:
        InvalidParameterError: the name does not end in ``.png``.
        OutputWriteError: the file could not be written.
    """
    from matplotlib.figure import Figure      # no pyplot: Agg canvas, no global backend change

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidParameterError(f"the curves plot must be a .png, got {path.name}")
    groups = changed_groups(edited) or [("No AU changes", tuple(a for _, g in GROUPS for a in g))]
    names = list(edited.au_names)
    x = np.asarray(edited.frame_numbers)
    still = len(x) == 1
    fig = Figure(figsize=(11, 2.3 * (len(groups) + 1)), dpi=100, layout="constrained")
    axes = fig.subplots(len(groups) + 1, 1, sharex=True, squeeze=False)[:, 0]
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    marker = "o" if still else None
    for ax, (group, aus) in zip(axes, groups):
        for c, au in zip(colors * 4, aus):
            if au not in names:
                continue
            k = names.index(au)
            ax.plot(x, edited.au_source[:, k], "--", color=c, lw=1.0, alpha=0.8, marker=marker)
            ax.plot(x, edited.au_target[:, k], "-", color=c, lw=1.8, marker=marker,
                    label=f"{au} {AU_LABELS.get(au, '')}")
        ax.set_title(group, loc="left", fontsize=10)
        ax.set_ylabel("activation")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, ncol=2, title="dashed: source, solid: edited", title_fontsize=7)
    ax = axes[-1]
    ax.plot(x, edited.intensity, color="k", lw=1.5, marker=marker, label="intensity")
    ax.plot(x, edited.speech_gate, color="0.5", lw=1.0, ls=":", marker=marker, label="speech gate")
    ax.set_ylabel("intensity")
    ax.set_xlabel("frame")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    p = edited.params
    if title is None:
        what = p.get("emotion") or "keyframes"
        if p.get("reference"):
            what = f"reference {p['reference'].get('name')}"
        inten = p.get("intensity")
        title = f"{what}" + (f" at {inten:g}" if isinstance(inten, (int, float)) else "")
        title += f", speech {p.get('speech')}" + (" (talking shot)" if p.get("talking") else "")
    fig.suptitle(title)
    from ..media import atomic_output

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
