"""OcclusionConfig: the one home of the occlusion stage's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError


@dataclass(frozen=True)
class OcclusionConfig:
    """Every knob of the occluder detector (glasses frames, hair over the face) and of the fill beneath them.

    Lengths given "x IOD" are fractions of the face's inter-ocular distance (outer eye corners, points 33 and
    263), so a setting means the same on a 512² clip and on a 4K plate. Contrasts are fractions of display
    white (the plate's luma divided by ``white``).

    Attributes:
        work_iod: the detector works on a copy of the region scaled so that the IOD is this many pixels (never
            enlarged); the matte is scaled back to the region.
        glasses: look for glasses frames (thin lines around the eyes).
        line_scales: half-widths (working pixels) of the thin lines the line filter looks for.
        line_low, line_high: hysteresis thresholds of the line contrast (how much darker a line is than both
            of its sides): pixels above ``line_high`` seed a line, connected pixels above ``line_low`` extend
            it.
        bright_lines: also look for lines brighter than both sides (clear plastic rims, highlights on metal),
            with thresholds ``bright_factor`` times the dark ones.
        bright_factor: see ``bright_lines``.
        min_line_length: a connected line must span at least this much (x IOD) to count as a frame.
        max_line_width: ... and be at most this wide on average (its pixel count over its span, x IOD).
        nose_below: the nose's sides below this depth under the eye line (x IOD) are not frames (the bridge
            and the nose pads sit above it).
        band_above, band_below: the band searched for frames: from ``band_above`` above the top of the brows
            to ``band_below`` below the eye line (x IOD), across the face oval grown by ``band_side``.
        band_side: frame lines are looked for only this far (x IOD) inside the face oval's sides (the face's
            own outline and the hair beside it are not frames); a traced lens rim runs out to the oval.
        lens_support: a pair of lens outlines (ellipses around the eyes, sharing height and vertical offset)
            is fitted to the frame lines found; when at least this fraction of their outline (where it can be
            seen) lies on found lines, each rim is traced along its outline: at every angle the strongest line
            within ``lens_corridor`` x IOD across the outline, if its contrast is >= ``lens_relax`` x
            ``line_low``, also through the lid crease and the brows. 1 turns this off.
        lens_corridor: see ``lens_support``.
        lens_relax: see ``lens_support``.
        still_lower, still_dip: glasses on one frame alone (a still: :meth:`OcclusionDetector.find_glasses`) need
            both lenses' rims traced along at least ``still_lower`` of their arcs under the eyes, as lines that
            dip at least ``still_dip`` below the cheek on both of their sides (a fraction of the cheek's luma); the
            median rim under each eye decides, and needs ``still_accept`` times that dip (d8's rims: 1.0-1.2 times
            from full size down to half; faces without glasses made no pair of rims that got this far).
        bridge_pair: on one frame alone, a second bridge bar (a double bridge) is looked for within this far (x
            IOD) above or below the first one found (d8's round frames: a brow bar 0.06 IOD over the bridge, which
            the brows' lift bent into a squiggle while the bridge under it stayed); it is followed on past the
            lenses' inner sides for up to ``bridge_pair_reach`` (x IOD) where it goes on (into the lens tops).
        glabella_margin: on one frame alone the rims are kept only below the brows (a fringe's strand is a thin
            line too), except between the brows' inner ends and this far (x IOD) outside them, where a rim runs
            up to the bridge (d8's lens tops bent there with the brows).
        still_support: ... from a lens pair with this much support (see ``lens_support``; the rims' check is
            what tells glasses from a face's own lines there); only the lines within ``still_corridor`` (x IOD)
            of the traced outlines are kept (the rest, hair and folds, cannot be told from the face on one frame) ...
        still_iod: ... looked for on a copy of the face scaled (up or down) to each of these IODs in turn (a
            thin rim's contrast after resampling depends on where the pixels fall: the first IOD that shows
            glasses decides).
        rim_width: the traced rim is drawn this many working pixels wide (before ``grow``).
        eye_margin: the eye contours (lids, lashes) grown by this much (x IOD) are not frames; the region
            above the upper lid (the lid crease) is excluded ``crease`` further.
        crease: see ``eye_margin``.
        lower_crease: the same below the lower lid.
        brow_margin: the brows, and all the other explained areas, are grown by this much more (x IOD).
        hair: look for hair over the face (colour against a skin model sampled from the cheeks, nose and
            forehead centre, inside the face oval). Off by default: on faces whose skin and hair are close in
            colour (the astronaut) it flags skin, and a kept patch of skin ruins an edit.
        forehead_hair: look for hair over the forehead only (bangs, a fringe, a lock falling over the brow):
            the same colour cue, but only above the brows and only in patches that reach the face oval's top edge
            (hair over the forehead comes from the hairline). On by default: a raised brow (surprise, fear) moved
            the forehead's pixels up into the fringe and drew skin and brow over its edge; kept, the brows
            go under the hair as a real raised brow does.
        skin_distance: a pixel whose chroma lies further than this many standard deviations from the skin
            model, or that is darker than ``hair_darkness`` times the skin's median luma, is hair.
        hair_darkness: see ``skin_distance``.
        hair_texture, hair_fringe: a fringe of the skin's own colour over the forehead (d8's brown curls hang down
            to his glasses: the colour cue kept a patch at one side, and the raised brows dragged the rest up in
            streaks): where the forehead's centre is textured, a pixel more textured than ``hair_texture`` (no
            brighter than ``hair_texture_luma`` times the skin's median luma) is hair too. Texture: the local
            contrast of the luma's fine detail over the cheeks' (``detector._texture``); the forehead's: its median
            over a disc of 0.15 IOD round mesh point 151, the shot's median over its frames
            (:class:`~ned_fx.occlusion.FringeBuilder`: one value, so the cue never switches on and off between
            frames; a still's its own). The cue fades in as that rises through ``hair_fringe`` (the threshold is
            ``hair_texture / s``, ``s`` the smoothstep between the two values): none below the first, all of it
            from the second. Measured: d8 2.62 (its strands 2.5-5, the gaps between them 1.8-2.5), the astronaut's
            fringe 2.05; bare foreheads 0.50-0.99 (people_0, d19, WDA, d3 over their shots; d3's lined surprised
            forehead too), d12 0.56 (a strand of his fringe crosses the centre now and then: per frame, the cue
            switched on and off). On every forehead (no fringe test) it took in the skin beside WDA's hairline: a
            step in brightness is texture to it within ~0.1 IOD. ``hair_texture`` 0: off.
        hair_texture_luma: see ``hair_texture`` (a bright pixel is lit skin or a highlight, not hair over skin).
        skin_shade: skin in shade (30 % or more darker than the model's luma; less, in proportion) may be this much
            more saturated than the model (its log chroma up to ``1 + skin_shade`` times the model's centre, the
            same hue) and still be skin: the forehead's sides under a dark hairline. Higher takes a brown fringe
            of the shaded skin's colour for skin too (the astronaut's: 0.90 of it found at 0, 0.83 at 0.15, 0.67
            at 0.3); WDA's temples: up to 17 % of the forehead band taken for hair at 0, < 3 % at 0.15.
        lit_skin: ``(from, factor)``: a pixel at least as bright as ``from`` times the skin model's median luma is hair
            only ``factor`` times as far from the model's chroma as ``skin_distance`` (in proportion between
            ``from`` and 1; all of it from the median up). Hair over a face is darker than the skin it covers, and a
            warm light on the forehead's side tints the skin there off the model's chroma: d12's lit temple was
            taken for hair at ``(1, 1)`` (off), and under surprised the matte kept a block of unmoved skin that cut
            the raised brow's tail off (frames 10-45); at ``(0.9, 2)`` the matte follows his hairline, his hair is
            kept as before, and bright background beside the hair (a cream wall, d3) is left to the warp's fade as
            the rest of the background is.
        hair_inset: hair is looked for only this far (x IOD) inside the face oval (its outline mixes in the
            background and the hair beside the face).
        feature_margin: eyes, brows, lips and nostrils grown by this much (x IOD) are never hair.
        hair_close: gaps in the hair up to about twice this (x IOD) are closed (a lock is kept whole).
        min_hair_area: a hair patch must cover at least this fraction of IOD² to count.
        hair_softness: the soft edge of a hair patch (x IOD, a Gaussian's sigma, as ``softness`` is for frames:
            the patch itself stays at exactly 1, the ramp lies outside it): skin moved beside a kept lock blends
            into it instead of meeting it at a seam.
        grow: the matte is grown by this many working pixels past the detected structure (anti-aliased
            edges of the occluder are kept too).
        softness: the matte's soft edge in region pixels (a Gaussian of this sigma).
        fill_levels: pyramid levels of the push-pull fill (the largest hole it fills is about 2^levels px).
        model_iod, model_size, model_eye_line: the per-shot glasses model's canonical view (the head turned
            frontal, the lens plane at the nose bridge's depth): the IOD in its pixels, its (width, height), the
            eye line's row.
        model_cap: a line contrast (x the skin's luma) that counts as full evidence of a frame line; the
            evidence is averaged over the shot's frames (aligned on the glasses).
        model_support: the lens pair fitted to the shot's evidence needs at least this mean evidence along
            its outlines (brows, lid creases, the nose's sides and the face's outline are not looked at) ...
        model_lower: ... and at least this along the rims under the eyes (the cheeks: no face line runs
            there), else the actor wears no glasses (``finish`` returns None).
        model_consistency: a rim is kept where the evidence across it is at least this.
        model_corridor: the rim is looked for this far (x IOD) across the fitted outline.
        model_rim: the rim's drawn width (x IOD, canonical view).
        model_rim_inner: under the eyes the rim is kept this much further inwards (x IOD): a thick frame's lower
            bar has its inner edge there (0: the traced line alone); d12's clear bars also show a pale reflection
            of that edge inside the lens, which a happy cheek raise bent into a wave at 0.07.
        model_search: each frame's glasses may sit up to this far (x IOD) from where the head pose puts them
            (landmark jitter, the glasses slipping): the lens pair is moved onto the frame's own lines.
        model_max_frames: at most this many frames are kept for the model (a longer shot is sub-sampled).
        model_min_frames: a shot of fewer frames gets no model (one frame's evidence is what ``detect`` sees
            anyway, and a single frame cannot show which lines stay with the head).
    """

    work_iod: float = 128.0
    glasses: bool = True
    line_scales: tuple[float, ...] = (0.7, 1.2, 2.0)
    line_low: float = 0.016
    line_high: float = 0.045
    bright_lines: bool = True
    bright_factor: float = 1.5
    min_line_length: float = 0.15
    max_line_width: float = 0.06
    nose_below: float = -0.02
    band_above: float = 0.08
    band_below: float = 0.42
    band_side: float = 0.08
    lens_support: float = 0.4
    lens_corridor: float = 0.03
    lens_relax: float = 0.7
    still_lower: float = 0.5
    still_dip: float = 0.1
    still_accept: float = 0.75
    bridge_pair: float = 0.15
    bridge_pair_reach: float = 0.1
    glabella_margin: float = 0.05
    still_iod: tuple[float, ...] = (128.0, 112.0, 144.0)
    still_support: float = 0.3
    still_corridor: float = 0.04
    rim_width: int = 2
    eye_margin: float = 0.05
    crease: float = 0.1
    lower_crease: float = 0.05
    brow_margin: float = 0.04
    hair: bool = False
    forehead_hair: bool = True
    skin_distance: float = 4.0
    skin_shade: float = 0.15
    hair_darkness: float = 0.35
    hair_texture: float = 1.8
    hair_texture_luma: float = 0.9
    hair_fringe: tuple[float, float] = (1.5, 2.5)
    lit_skin: tuple[float, float] = (0.9, 2.0)
    hair_inset: float = 0.05
    feature_margin: float = 0.05
    min_hair_area: float = 0.01
    hair_close: float = 0.04
    hair_softness: float = 0.01
    grow: int = 1
    softness: float = 0.7
    fill_levels: int = 8
    model_iod: float = 112.0
    model_size: tuple[int, int] = (256, 192)
    model_eye_line: float = 88.0
    model_support: float = 0.45
    model_consistency: float = 0.4
    model_corridor: float = 0.04
    model_rim: float = 0.03
    model_rim_inner: float = 0.12
    model_cap: float = 0.04
    model_lower: float = 0.53
    model_search: float = 0.08
    model_max_frames: int = 240
    model_min_frames: int = 5

    def __post_init__(self) -> None:
        if not 32.0 <= self.work_iod <= 1024.0:
            raise InvalidParameterError(f"work_iod must be between 32 and 1024 pixels, got {self.work_iod}")
        if not self.line_scales or any(not 0.3 <= s <= 8.0 for s in self.line_scales):
            raise InvalidParameterError(f"line_scales must be half-widths between 0.3 and 8 px, got {self.line_scales}")
        if not 0.0 < self.line_low <= self.line_high <= 1.0:
            raise InvalidParameterError(f"need 0 < line_low <= line_high <= 1, got {self.line_low}, {self.line_high}")
        if not 0.0 < self.lens_support <= 1.0 or not 0.0 < self.still_support <= 1.0:
            raise InvalidParameterError(f"lens_support and still_support must be in (0, 1], got {self.lens_support}, "
                                        f"{self.still_support}")
        if not 0.0 < self.lens_relax <= 1.0:
            raise InvalidParameterError(f"lens_relax must be in (0, 1], got {self.lens_relax}")
        if not 0.0 < self.still_accept <= 4.0:
            raise InvalidParameterError(f"still_accept must be in (0, 4], got {self.still_accept}")
        if not 0.0 < self.still_lower <= 1.0 or not 0.0 < self.still_dip < 1.0:
            raise InvalidParameterError(f"need 0 < still_lower <= 1 and 0 < still_dip < 1, got {self.still_lower}, "
                                        f"{self.still_dip}")
        if not self.still_iod or any(not 32.0 <= x <= 1024.0 for x in self.still_iod):
            raise InvalidParameterError(f"still_iod must be IODs between 32 and 1024 pixels, got {self.still_iod}")
        if not 1 <= self.rim_width <= 8:
            raise InvalidParameterError(f"rim_width must be between 1 and 8 working pixels, got {self.rim_width}")
        if not self.bright_factor >= 1.0:
            raise InvalidParameterError(f"bright_factor must be >= 1, got {self.bright_factor}")
        if not -0.5 <= self.nose_below <= 0.5:
            raise InvalidParameterError(f"nose_below must be between -0.5 and 0.5 (x IOD), got {self.nose_below}")
        for name in ("min_line_length", "max_line_width", "band_above", "band_below", "band_side", "eye_margin",
                     "crease", "lower_crease",
                     "brow_margin", "lens_corridor", "still_corridor", "hair_inset", "feature_margin", "min_hair_area",
                     "hair_close", "hair_softness", "bridge_pair", "bridge_pair_reach",
                     "glabella_margin"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidParameterError(f"{name} must be between 0 and 1 (x IOD), got {value}")
        if not self.skin_distance > 0:
            raise InvalidParameterError(f"skin_distance must be > 0, got {self.skin_distance}")
        if not 0.0 <= self.skin_shade <= 2.0:
            raise InvalidParameterError(f"skin_shade must be between 0 and 2, got {self.skin_shade}")
        if len(self.lit_skin) != 2 or not (0.0 < self.lit_skin[0] <= 1.0 and 1.0 <= self.lit_skin[1] <= 10.0):
            raise InvalidParameterError(f"lit_skin must be (from, factor) with 0 < from <= 1 <= factor <= 10, got "
                                        f"{self.lit_skin}")
        if not 0.0 <= self.hair_darkness < 1.0:
            raise InvalidParameterError(f"hair_darkness must be between 0 and 1, got {self.hair_darkness}")
        if not (self.hair_texture == 0 or 1.0 < self.hair_texture <= 50.0):
            raise InvalidParameterError(f"hair_texture must be 0 (off) or between 1 and 50, got {self.hair_texture}")
        if len(self.hair_fringe) != 2 or not 0.0 <= self.hair_fringe[0] < self.hair_fringe[1]:
            raise InvalidParameterError(f"hair_fringe must be (low, high) with 0 <= low < high, got {self.hair_fringe}")
        if not 0.0 < self.hair_texture_luma <= 4.0:
            raise InvalidParameterError(f"hair_texture_luma must be in (0, 4], got {self.hair_texture_luma}")
        if not 0 <= self.grow <= 8:
            raise InvalidParameterError(f"grow must be between 0 and 8 pixels, got {self.grow}")
        if not 0.0 <= self.softness <= 4.0:
            raise InvalidParameterError(f"softness must be between 0 and 4 pixels, got {self.softness}")
        if not 32.0 <= self.model_iod <= 512.0:
            raise InvalidParameterError(f"model_iod must be between 32 and 512 pixels, got {self.model_iod}")
        if len(self.model_size) != 2 or min(self.model_size) < 2 * self.model_iod * 0.6:
            raise InvalidParameterError(f"model_size must be (width, height) of at least 1.2 x model_iod, got "
                                        f"{self.model_size}")
        if not 0.0 < self.model_eye_line < self.model_size[1]:
            raise InvalidParameterError(f"model_eye_line must be a row of the model view, got {self.model_eye_line}")
        for name in ("model_cap", "model_support", "model_lower", "model_consistency", "model_corridor",
                     "model_rim", "model_search"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InvalidParameterError(f"{name} must be in (0, 1], got {value}")
        if not 0.0 <= self.model_rim_inner <= 1.0:
            raise InvalidParameterError(f"model_rim_inner must be in [0, 1], got {self.model_rim_inner}")
        if not 1 <= self.model_min_frames <= self.model_max_frames:
            raise InvalidParameterError(f"need 1 <= model_min_frames <= model_max_frames, got "
                                        f"{self.model_min_frames}, {self.model_max_frames}")
        if not 1 <= self.fill_levels <= 12:
            raise InvalidParameterError(f"fill_levels must be between 1 and 12, got {self.fill_levels}")
