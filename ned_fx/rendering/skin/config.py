"""The skin sub-stage's knobs (the only home of its defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import InvalidParameterError

#: Which AU changes drive each fold group, and how much (target - source activation, weighted and summed).
DEFAULT_DRIVES: dict[str, dict[str, float]] = {
    "nasolabial": {"AU12": 1.0, "AU6": 0.35, "AU10": 0.6, "AU9": 0.45, "AU14": 0.3},
    "cheek": {"AU6": 1.0, "AU12": 0.5},
    "crows_feet": {"AU6": 1.0, "AU12": 0.25, "AU7": 0.2},
    "glabella": {"AU4": 1.0, "AU9": 0.3},
    "forehead_inner": {"AU1": 1.0, "AU2": 0.3},
    "forehead_outer": {"AU2": 1.0, "AU1": 0.3},
    "nose": {"AU9": 1.0, "AU10": 0.2},
    "marionette": {"AU15": 1.0, "AU17": 0.3},
    "chin": {"AU17": 1.0, "AU15": 0.7},
}


def _frozen_drives() -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    return tuple((fold, tuple(sorted(w.items()))) for fold, w in DEFAULT_DRIVES.items())


@dataclass(frozen=True)
class SkinConfig:
    """How the folds of a new expression are shaded over the warped skin.

    Every fold is a multiplicative luminance change (``out = warped * ratio``): a narrow dark crease with a soft
    highlight on its upper/outer side, placed by the target landmarks, whose depth follows the *change* of the
    AUs that make it (see ``drives``). Widths are fractions of the inter-ocular distance (IOD, outer eye corners);
    depths are natural-log luminance changes at a drive of 1 (``0.1`` darkens the crease centre by about 10 %).

    Attributes:
        strength: overall gain of every fold (0 switches the sub-stage off).
        drives: ``((fold, ((AU, weight), ...)), ...)``: per fold group, the weighted sum of AU changes that
            deepens it (groups: nasolabial, cheek, crows_feet, glabella, forehead_inner, forehead_outer, nose,
            marionette).
        max_drive: a fold's drive is clipped to ``-max_drive .. max_drive``.
        min_change: AU changes smaller than this (in absolute value) count as none (a frame without any bigger
            change gets no layer at all).
        nasolabial_depth, nasolabial_width: the smile fold's crease (log luminance, IOD fraction of its core
            Gaussian sigma); nasolabial_shadow: the broader shading on its upper-lip side; nasolabial_highlight:
            the cheek bulge's highlight beside it; nasolabial_slope: the fold runs down from the nose wing: each of
            its control points lies at least this much lower (along the face) than the one before per unit of its
            outward step. The points follow the target's cheek, which a smile lifts: d19's and people_0's happy (and
            the astronaut's at 1.5) had the fold leave the nose level, a dark bar under it like a moustache's
            shadow, before turning down; at 0.8 (~39 degrees under the horizontal at least) it starts down. 0: off.
        cheek_highlight, cheek_radius: the raised cheek's soft highlight (log luminance, IOD radius).
        crease_depth, crease_width: forehead lines, glabella furrows, nose wrinkles, crow's feet (log luminance,
            IOD sigma); crease_highlight: the soft highlight on each crease's upper/outer side relative to its
            depth; highlight_offset, highlight_width: where that highlight sits and how wide it is (multiples of
            the crease's sigma).
        glabella_depth: the brow furrow's depth (deeper than the fine lines).
        forehead_lines: number of horizontal forehead lines.
        wobble: the small irregularity of every crease's course (IOD) and depth (fraction), so a crease never
            looks drawn; fixed per fold, so it never flickers.
        warmth: per-channel exponents of the ratio on RGB plates (skin in shadow is a little warmer).
        soften: how much of an existing fold's mid-frequency darkening a negative drive of 1 lifts (0..1).
        relax: a brow furrow or a pout's chin taken away (a negative glabella or chin drive: neutral, happy or
            surprised over a frown; neutral or happy over a pout) has this share of its folds flattened at a drive of
            1 (0..1; :func:`~.procedural.add_glabella_relax`: the furrows and the ridges beside them over the
            glabella; :func:`~.procedural.add_chin_relax`: the chin's dimpling and the marionette folds; per colour
            channel); 0: the glabella creases are softened as the other folds are (``soften``: d3.mp4's frowns kept
            their furrows under neutral) and the chin is left as the warp carries it (d8.jpg's neutral kept his
            pout's folds).
        relax_from: ``(none, full)``: the relax fades in as the drive's size rises through these (none below the
            first, the whole share from the second). Talkers' neutralised brows and chins drive -0.05 to -0.3 with
            no fold to flatten (WDA, d12, d3 under happy: the glabella's mean -0.09 to -0.14 a frame), and each
            frame's relax cost ~2 ms at 512²; d3's frowns drive 0.8-1.1, d8's chin 0.99.
        relax_height: that glabella reaches this far above the brows (IOD).
        relax_width: the wide low-pass across the face a furrow is measured against (IOD sigma).
        relax_chin: the low-pass over the chin a fold is measured against (IOD sigma).
        relax_ridge: the most a ridge beside a fold is darkened (log luminance; a fold itself is lifted by at most
            0.4).
        socket_lift: where the target stretches an eye socket (the skin between the upper lid margin and the brow's
            lower edge) by ``s``, the socket's shadow is lifted by ``1 - 1/s`` of its darkness (its darkness kept in
            all, not spread over the taller socket: light adds linearly, so the deficit under the reference shrinks
            by that share; :func:`~ned_fx.rendering.skin.procedural.add_socket_lift`), times this (0: off);
            socket_lift_max: that share's ceiling; socket_lift_limit: the most darkness (log luminance under the
            reference) counted. d3.mp4's sad raised her inner brows over lowered lids and
            stretched her deep-set sockets 1.8-1.95x: a dark patch like a bruise under each brow.
        socket_sigma: the socket's shading is its log luminance low-passed at this sigma (IOD); the lift is that
            darkness, so the skin's texture stays.
        socket_band: where in the socket's height (0 the lid margin, 1 the brow's lower edge) the lift acts: none
            up to the first value (the lashes and liner stay), fading in to the second, full to the third, none from
            the fourth (the brow's own hairs).
        socket_reference: the darkness is measured against the forehead's low-passed luminance in a band this far
            above the brow's upper edge (IOD, near and far): its median, occluders left out.
        model_iod: the learned model samples each frame scaled so the eyes are this many pixels apart.
        model_min_frames: fewer frames with activations than this: no learned model.
        model_min_range: an AU is learned only where the shot's activations spread at least this far (2nd to
            98th percentile).
        model_ridge: ridge regularisation, relative to the number of frames.
        model_significance: coefficients smaller than this many standard errors shrink toward zero.
        model_max: the largest log-luminance change the learned model may make.
        model_blur: how smoothly the learned change is spread over the face (IOD).
        furrow_margin, furrow_min_frames: the brow furrow the picture shows beyond the shot's relaxed brow
            (:mod:`.evidence`: its depth over the shot's 10th percentile, less ``furrow_margin`` log luminance,
            over ``glabella_depth``) counts as a frown the mesh did not see, on shots of at least
            ``furrow_min_frames`` measured frames (d3.mp4's frowns 0.115-0.124 over a relaxed 0-0.015; WDA's and
            d12's brows read <= 0.004 throughout).
        pout_rest: the marionette lines' depth (:func:`~.evidence.marionette_depth`, log luminance) a relaxed mouth
            may show: deeper lines count as the lip corner depressor (AU15) the mesh did not see
            (:func:`~.evidence.pout_activation`), on a still too. Relaxed faces, talkers and smiles on the shared
            footage read at most 0.013 (d3, d12, WDA, people_0, d19, the astronaut; our own sad at 1 draws 0.011),
            d8.jpg's pout 0.09.
        pout_yaw: ``(full, none)``: the marionette lines are measured in full on a face turned up to the first
            angle (degrees), not at all from the second, fading between (turned, the far cheek's silhouette lies
            on the far line's course: d3.mp4 at 18-23 degrees reads 0.09-0.10 with her mouth relaxed).
        pout_skin: ``(none, full)``: the marionette lines count only where their course is skin: its low-passed
            luminance over the cheeks' (``_CHEEKS`` in :mod:`.evidence`) at the first value or below gives none,
            full from the second. Skin reads 0.78-1.05 on the shared footage (d8 1.05); a synthetic goatee on
            people_0 0.51-0.60, its edges along the course 0.16-0.34 deep (a pout of 1.5 without this).
        pout_fitted: ``(none, full)``: the marionette lines count only as far as the mesh's own fit pulls the mouth
            that way too (its AU15 + AU17: none up to the first value, full from the second): on a still, an older
            face's deep lines at rest would read as a pout. d8.jpg fits 0.07 + 0.36.
    """

    strength: float = 1.0
    drives: tuple = field(default_factory=_frozen_drives)
    max_drive: float = 1.5
    min_change: float = 0.02
    nasolabial_depth: float = 0.12
    nasolabial_width: float = 0.02
    nasolabial_shadow: float = 0.06
    nasolabial_highlight: float = 0.05
    nasolabial_slope: float = 0.8
    cheek_highlight: float = 0.035
    cheek_radius: float = 0.11
    crease_depth: float = 0.10
    crease_width: float = 0.007
    crease_highlight: float = 0.4
    highlight_offset: float = 2.5
    highlight_width: float = 2.0
    glabella_depth: float = 0.11
    forehead_lines: int = 3
    wobble: float = 0.004
    warmth: tuple[float, float, float] = (0.85, 1.0, 1.12)
    soften: float = 0.5
    relax: float = 1.0
    relax_height: float = 0.25
    relax_width: float = 0.08
    relax_chin: float = 0.05
    relax_ridge: float = 0.4
    relax_from: tuple[float, float] = (0.15, 0.3)
    socket_lift: float = 1.0
    socket_lift_max: float = 0.6
    socket_lift_limit: float = 1.2
    socket_sigma: float = 0.03
    socket_band: tuple[float, float, float, float] = (0.1, 0.35, 0.8, 1.0)
    socket_reference: tuple[float, float] = (0.03, 0.12)
    model_iod: float = 64.0
    model_min_frames: int = 20
    model_min_range: float = 0.4
    model_ridge: float = 0.01
    model_significance: float = 3.0
    model_max: float = 0.25
    model_blur: float = 0.03
    furrow_margin: float = 0.02
    furrow_min_frames: int = 10
    pout_rest: float = 0.03
    pout_yaw: tuple[float, float] = (10.0, 16.0)
    pout_skin: tuple[float, float] = (0.6, 0.72)
    pout_fitted: tuple[float, float] = (0.1, 0.3)

    def __post_init__(self) -> None:
        for name in ("strength", "max_drive", "min_change", "nasolabial_depth", "nasolabial_shadow",
                     "nasolabial_highlight", "cheek_highlight", "crease_depth", "crease_highlight", "glabella_depth",
                     "wobble", "soften", "nasolabial_slope", "socket_lift", "socket_lift_limit", "relax",
                     "relax_ridge"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v >= 0 or v != v or v == float("inf"):
                raise InvalidParameterError(f"skin {name} must be a finite number >= 0, got {v!r}")
        for name in ("nasolabial_width", "crease_width", "cheek_radius", "highlight_offset", "highlight_width"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 < v < 10:
                raise InvalidParameterError(f"skin {name} must be a positive number, got {v!r}")
        if not isinstance(self.socket_lift_max, (int, float)) or not 0 <= self.socket_lift_max <= 1:
            raise InvalidParameterError(f"skin socket_lift_max must be 0..1, got {self.socket_lift_max!r}")
        if not isinstance(self.socket_sigma, (int, float)) or not 0 < self.socket_sigma < 1:
            raise InvalidParameterError(f"skin socket_sigma must be 0..1 (IOD), got {self.socket_sigma!r}")
        band = self.socket_band
        if len(band) != 4 or not all(isinstance(x, (int, float)) for x in band) \
                or not 0 <= band[0] < band[1] <= band[2] < band[3] <= 1:
            raise InvalidParameterError(f"skin socket_band must be four rising numbers 0..1 (none, full, full, none), "
                                        f"got {band!r}")
        ref = self.socket_reference
        if len(ref) != 2 or not all(isinstance(x, (int, float)) and 0 <= x < 1 for x in ref) \
                or not ref[0] < ref[1]:
            raise InvalidParameterError(f"skin socket_reference must be (near, far) with near < far, got "
                                        f"{self.socket_reference!r}")
        if not isinstance(self.furrow_margin, (int, float)) or not 0 <= self.furrow_margin < 1:
            raise InvalidParameterError(f"skin furrow_margin must be 0..1, got {self.furrow_margin!r}")
        if not isinstance(self.pout_rest, (int, float)) or not 0 <= self.pout_rest < 1:
            raise InvalidParameterError(f"skin pout_rest must be 0..1 (log luminance), got {self.pout_rest!r}")
        # (lo, hi) ramps: two numbers, 0 <= lo < hi <= top
        for name, top, ends, unit in (("pout_yaw", 90, "full, none", "degrees"),
                                      ("pout_skin", 2, "none, full", "ratios"),
                                      ("pout_fitted", 3, "none, full", "activations"),
                                      ("relax_from", 1, "none, full", "drives")):
            pair = getattr(self, name)
            if len(pair) != 2 or not all(isinstance(v, (int, float)) for v in pair) \
                    or not 0 <= pair[0] < pair[1] <= top:
                first, second = ends.split(", ")
                raise InvalidParameterError(f"skin {name} must be ({ends}) {unit} with 0 <= {first} < {second} <= "
                                            f"{top}, got {pair!r}")
        if not isinstance(self.furrow_min_frames, int) or self.furrow_min_frames < 2:
            raise InvalidParameterError(f"skin furrow_min_frames must be an integer >= 2, got "
                                        f"{self.furrow_min_frames!r}")
        for name in ("model_iod", "model_min_range", "model_ridge", "model_max", "model_blur"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 < v < 1e4:
                raise InvalidParameterError(f"skin {name} must be a positive number, got {v!r}")
        if not isinstance(self.model_significance, (int, float)) or not 0 <= self.model_significance < 100:
            raise InvalidParameterError(f"skin model_significance must be >= 0, got {self.model_significance!r}")
        if not isinstance(self.model_min_frames, int) or self.model_min_frames < 3:
            raise InvalidParameterError(f"skin model_min_frames must be an integer >= 3, got "
                                        f"{self.model_min_frames!r}")
        if not isinstance(self.forehead_lines, int) or not 0 <= self.forehead_lines <= 6:
            raise InvalidParameterError(f"skin forehead_lines must be 0..6, got {self.forehead_lines!r}")
        for name in ("soften", "relax", "relax_ridge"):
            if getattr(self, name) > 1:
                raise InvalidParameterError(f"skin {name} must be 0..1, got {getattr(self, name)}")
        for name in ("relax_height", "relax_width", "relax_chin"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 < v < 1:
                raise InvalidParameterError(f"skin {name} must be 0..1 (IOD), got {v!r}")
        if len(self.warmth) != 3 or not all(0 < float(w) < 3 for w in self.warmth):
            raise InvalidParameterError(f"skin warmth must be three positive exponents, got {self.warmth!r}")
        known = set(DEFAULT_DRIVES)
        for fold, weights in self.drives:
            if fold not in known:
                raise InvalidParameterError(f"unknown skin fold {fold!r}; folds: {', '.join(sorted(known))}")
            for au, w in weights:
                if not isinstance(au, str) or not isinstance(w, (int, float)):
                    raise InvalidParameterError(f"skin drive of {fold} must be (AU name, weight) pairs, got "
                                                f"{(au, w)!r}")

    def drive_weights(self) -> dict[str, dict[str, float]]:
        """``{fold: {AU: weight}}``."""
        return {fold: dict(weights) for fold, weights in self.drives}
