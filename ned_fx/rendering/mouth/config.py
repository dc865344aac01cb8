"""MouthConfig: the one home of the mouth-interior sub-stage's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InvalidParameterError


@dataclass(frozen=True)
class MouthConfig:
    """Every knob of the mouth interior (bank of the actor's own open mouths -> temporal plan -> layer).

    Lengths "x width" are fractions of the mouth's inner-lip corner-to-corner width in that frame, so a setting
    means the same at any plate resolution.

    Attributes:
        texture_width, texture_height: size of one interior in the canonical mouth space (columns run from the
            right inner-lip corner to the left one along the lip points, rows from the upper inner lip to the
            lower one).
        max_entries: most interiors a bank keeps (the most diverse by inner-lip shape).
        pool_size: interiors held while the shot streams in; above it the pool is thinned (farthest-point
            sampling by shape) to ``2 x max_entries``.
        min_open: a frame's interior enters the bank when its central inner-lip gap is at least this (x width) ...
        min_open_px: ... and at least this many plate pixels.
        match_sigma: unit (x width) of the inner-lip shape distance in the plan's cost.
        under_open_weight: extra cost, per ``match_sigma``, of a candidate whose opening is smaller than the
            target's (its interior would be stretched; a larger one is only compressed).
        over_open_weight: extra cost, per ``match_sigma``, of a candidate whose opening is larger than the target's
            (its cavity narrowed to fit: a wide-open interior's dark in a half-open mouth).
        switch_cost: cost of changing candidate between two frames, in units of one ``match_sigma`` of shape
            distance held for one frame (higher: fewer, later switches).
        crossfade: frames over which a switch of candidate is cross-faded.
        morph: where a new interior covers a column only partly (the target a little more open than an open
            source), the warp's own teeth are morphed that far toward it along the optical flow instead of the two
            dissolved (both rows of teeth at part strength: a grey band across the teeth).
        cover_ratio_start, cover_ratio_full: the layer fades in, per inner-lip column, as the target's gap over
            the source's gap grows from the first ratio to the second (a talking mouth kept as it is: none) ...
        cover_excess_start, cover_excess_full: ... and as the target's gap minus the source's grows from the first
            to the second (x width). Both must hold.
        edge_feather: the soft edge just inside the target inner lip (x width; at least ``edge_min_px``),
            over which the layer fades in from 0 on the lip line, so the lips stay the warp's.
        edge_min_px: smallest feather in pixels (anti-aliasing).
        lip_rim: where the opening is new (a closed mouth opened), the layer reaches this far beyond the target
            inner lip onto the lips (x the inter-ocular distance; at most half the lip's thickness) and paints
            there where the warp is darker, and in the feather inside it, the lips' own colour (sampled on the lip
            body, away from the crease): the warp stretches the closed lips' dark crease along the new inner lip,
            a dark ink line around the opening (0: none) ...
        lip_rim_shadow: ... graded into a soft shadow this much darker at the opening's edge (0..1).
        lip_rim_corner: ... and at the mouth's corners this far (x the inter-ocular distance), not held to half
            the lip's thickness there, with the colour taken a column in: a closed mouth's crease runs on past
            the inner-lip corner, through the thin lip at the commissure, and the warp stretched it into a dark
            stroke from the corner down to a new opening, beside the opening's own edge (people_0 surprised).
        rigid_width: a bank interior laid into a mouth wider or narrower than its own (both x the inter-ocular
            distance) is scaled across by (width ratio) ** this: 0 stretches it with the lips, 1 keeps the teeth's
            width (more or less of the mouth's corners shows).
        teeth_band: where the target opens further than the bank interior, this much of the interior's opening
            at each lip (the upper and lower teeth) keeps its scale; only the middle stretches (0: all stretches).
        min_gain, max_gain: bounds of the per-channel colour gain matching an interior to the current frame's
            lighting (measured on the lips and the skin around them).
        throat_level: synthetic interior (no bank): the throat colour as a fraction of the lip colour ...
        tongue_level: ... the tongue's (lower middle) ...
        centre_darkening: ... how much darker the centre is than the rim (0..1) ...
        teeth_height: ... the height of the upper-teeth band (x width; ``teeth_hidden`` of it under the upper lip) ...
        teeth_hidden: ... the share of that band hidden under the upper lip ...
        teeth_from_sclera: ... with no teeth seen in the shot, the teeth colour is the eye whites' blended this far
            toward a warm off-white ...
        teeth_darkening: ... and darkened by this fraction (teeth in a mouth are darker than the sclera) ...
        teeth_separation: ... the faint darkening between neighbouring teeth (0: none) ...
        lower_teeth_open: ... and a thin hint of the lower teeth shows where the opening exceeds this (x width).
        own_open_start, own_open_full: a source mouth whose central opening (x width) is above the first keeps its
            own interior where the target opens further (fully from the second): its upper teeth stay at their
            size under the upper lip, its lower part at its size above the lower lip, and the cavity (the bank's,
            else synthetic) fills the gap between; a closed one gets a whole interior (the bank's, else synthetic).
        own_ratio_start, own_ratio_full, own_excess_start, own_excess_full: the coverage of that kept own interior
            (ratio of the target's gap to the source's, and their difference x width), which starts earlier than
            ``cover_*``: the warp would otherwise stretch the source's own teeth.
        bank_fit_start, bank_fit_full: where the source's own interior would be kept (``own_*``), a bank interior
            replaces it when the planned entry opens at least the second fraction of the target's opening (fully;
            from the first on, blended): a real interior that open needs no stretching, while a kept band of teeth
            over a synthetic cavity is the fallback (a still, whose bank is its own frame).
        grain: synthetic interior: noise as a multiple of the plate's own noise measured on the lips.
        jaw_ratio_start, jaw_ratio_full: a bank interior whose teeth are together (no dark gap between the upper
            and the lower teeth: a clenched or bared-teeth frame) laid into a target that opens this many times
            further than it (centre gap over the entry's; from the first on, fully from the second) is opened as
            a jaw drop: its upper teeth at their size under the upper lip, its lower part at its size above the
            lower lip, a shaded cavity between (as the source's own open mouth opened further), instead of
            stretching a row of teeth over the whole opening.
        gap_depth_start, gap_depth_full: how an interior's teeth are told together: the darkest row below its
            upper teeth (central columns, above the lower lip) is darker than the teeth by less than the first
            fraction (together), or by more than the second (a gap: the dark of the mouth shows between them).
    """

    texture_width: int = 128
    texture_height: int = 64
    max_entries: int = 48
    pool_size: int = 192
    min_open: float = 0.08
    min_open_px: float = 4.0
    match_sigma: float = 0.03
    under_open_weight: float = 6.0
    over_open_weight: float = 0.2
    switch_cost: float = 20.0
    crossfade: int = 6
    morph: bool = True
    cover_ratio_start: float = 1.15
    cover_ratio_full: float = 1.6
    cover_excess_start: float = 0.01
    cover_excess_full: float = 0.05
    edge_feather: float = 0.035
    edge_min_px: float = 1.2
    lip_rim: float = 0.03
    lip_rim_shadow: float = 0.2
    lip_rim_corner: float = 0.06
    rigid_width: float = 0.5
    teeth_band: float = 0.3
    min_gain: float = 0.5
    max_gain: float = 2.0
    throat_level: float = 0.3
    tongue_level: float = 0.6
    centre_darkening: float = 0.45
    teeth_height: float = 0.12
    teeth_hidden: float = 0.15
    teeth_from_sclera: float = 0.35
    teeth_darkening: float = 0.2
    teeth_separation: float = 0.12
    lower_teeth_open: float = 0.3
    own_open_start: float = 0.12
    own_open_full: float = 0.17
    own_ratio_start: float = 1.18
    own_ratio_full: float = 1.35
    own_excess_start: float = 0.01
    own_excess_full: float = 0.03
    bank_fit_start: float = 0.6
    bank_fit_full: float = 0.85
    grain: float = 1.0
    jaw_ratio_start: float = 1.3
    jaw_ratio_full: float = 1.7
    gap_depth_start: float = 0.25
    gap_depth_full: float = 0.45

    def __post_init__(self) -> None:
        for name in ("texture_width", "texture_height"):
            if not 8 <= getattr(self, name) <= 1024:
                raise InvalidParameterError(f"{name} must be between 8 and 1024, got {getattr(self, name)}")
        if not 1 <= self.max_entries <= 1024:
            raise InvalidParameterError(f"max_entries must be between 1 and 1024, got {self.max_entries}")
        if self.pool_size < 2 * self.max_entries:
            raise InvalidParameterError(f"pool_size must be at least 2 x max_entries ({2 * self.max_entries}), "
                                        f"got {self.pool_size}")
        for name in ("min_open", "match_sigma", "edge_feather", "cover_excess_full"):
            if not getattr(self, name) > 0:
                raise InvalidParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("min_open_px", "under_open_weight", "over_open_weight", "switch_cost", "edge_min_px",
                     "cover_excess_start", "teeth_height", "grain", "lip_rim", "lip_rim_corner"):
            if not getattr(self, name) >= 0:
                raise InvalidParameterError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.crossfade < 0:
            raise InvalidParameterError(f"crossfade must be >= 0 frames, got {self.crossfade}")
        if not 1.0 <= self.cover_ratio_start < self.cover_ratio_full:
            raise InvalidParameterError(f"cover_ratio_start must be >= 1 and below cover_ratio_full, got "
                                        f"{self.cover_ratio_start} and {self.cover_ratio_full}")
        if not self.cover_excess_start < self.cover_excess_full:
            raise InvalidParameterError(f"cover_excess_start must be below cover_excess_full, got "
                                        f"{self.cover_excess_start} and {self.cover_excess_full}")
        if not 0 < self.min_gain <= 1.0 <= self.max_gain:
            raise InvalidParameterError(f"min_gain must be in (0, 1] and max_gain >= 1, got {self.min_gain} and "
                                        f"{self.max_gain}")
        if not 0.0 <= self.lip_rim_shadow < 1.0:
            raise InvalidParameterError(f"lip_rim_shadow must be in [0, 1), got {self.lip_rim_shadow}")
        if not 0.0 <= self.teeth_band < 0.5:
            raise InvalidParameterError(f"teeth_band must be in [0, 0.5), got {self.teeth_band}")
        for lo, hi in (("own_open_start", "own_open_full"), ("own_ratio_start", "own_ratio_full"),
                       ("own_excess_start", "own_excess_full")):
            if not 0.0 <= getattr(self, lo) < getattr(self, hi):
                raise InvalidParameterError(f"{lo} must be >= 0 and below {hi}, got {getattr(self, lo)} and "
                                            f"{getattr(self, hi)}")
        if not 0.0 <= self.bank_fit_start < self.bank_fit_full:
            raise InvalidParameterError(f"bank_fit_start must be >= 0 and below bank_fit_full, got "
                                        f"{self.bank_fit_start} and {self.bank_fit_full}")
        for lo, hi in (("jaw_ratio_start", "jaw_ratio_full"), ("gap_depth_start", "gap_depth_full")):
            if not 0.0 <= getattr(self, lo) < getattr(self, hi):
                raise InvalidParameterError(f"{lo} must be >= 0 and below {hi}, got {getattr(self, lo)} and "
                                            f"{getattr(self, hi)}")
        if not self.own_ratio_start >= 1.0:
            raise InvalidParameterError(f"own_ratio_start must be >= 1, got {self.own_ratio_start}")
        if self.lower_teeth_open < 0:
            raise InvalidParameterError(f"lower_teeth_open must be >= 0, got {self.lower_teeth_open}")
        for name in ("throat_level", "tongue_level", "centre_darkening", "rigid_width", "teeth_hidden",
                     "teeth_from_sclera", "teeth_darkening", "teeth_separation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidParameterError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
