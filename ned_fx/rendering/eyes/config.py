"""EyeConfig: the one home of the eye sub-stage's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InvalidParameterError


@dataclass(frozen=True)
class EyeConfig:
    """Every knob of the eyeball model and its renderer.

    Lengths given "x W" are fractions of the eye's width (corner to corner), so a setting means the same on a
    512² clip and on a 4K plate; ``rho`` is the radius in iris radii.

    Attributes:
        iris_rings, iris_angles: the iris texture's polar grid (rings from the centre to the limbus, angles
            around it, measured from the eye's corner-to-corner axis).
        lash_margin: plate pixels this far inside the lid contour (x W) are lid margin and lashes, never eyeball:
            the model samples iris and sclera only deeper inside the opening.
        min_opening: an eye whose opening (upper to lower lid, x W) is smaller than this in a frame (a blink)
            gives the model nothing from that frame.
        iris_detail: the iris texture keeps a seen cell's own colour only within this fraction of its ring's
            median brightness (darker is a lash or the lid's shadow, brighter a catchlight's rim).
        iris_side_angle: a ring's colour is the median of its cells within this many degrees of the eye's axis
            (the iris's sides, which the lids leave) where at least 3 of them were seen, else of all its seen
            cells: cells seen at the top and bottom near the rim hold lid skin and the lid's shade (d12's rings
            brightened from half the radius out, and his iris was drawn squashed, 0.87-0.89 round). 90: every cell.
            Measured on d12 surprised (60 frames): 45 and 60 read 0.90-0.91 but turned d8's blue irises bluer
            (blue over red +0.043 and +0.049 against the source's, test limit 0.04); 30: 0.916, d8 +0.036.
        iris_detail_bright: ... and a seen cell brighter than its ring's colour fades out of the texture from half
            this fraction above it to all of it (at most ``iris_detail``): lid skin and a soft rim's sclera are
            brighter than iris; a hard cut split cells by how the plate's channels are weighed.
        highlight: iris samples brighter than this many times their ring's median are a catchlight, not iris.
        limbus_rise: an outer ring of the iris texture (past 0.85 radii) brighter than this many times the iris's
            brightest ring between 0.5 and 0.85 has sampled the sclera (a soft edge, a radius a pixel large): it
            takes the colour of the ring inside it. WDA's last ring was 3-4x her iris's brightness, drawn as a pale
            ring inside the limbus that the colour match tinted cyan or violet (surprised, frames 30-32 at 8x).
            0: off.
        sclera_exclusion: sclera is sampled only beyond this many iris radii from the iris centre ...
        sclera_floor: ... and only where at least this fraction of the frame's bright sclera (its 90th
            percentile): lashes, iris and the caruncle are not sclera.
        shading_bins: bins of the sclera's shading profile along the eye (corner to corner; a quadratic fit
            to the visible sclera, so the hidden middle is interpolated, not guessed from a few pixels).
        shadow_bins, shadow_reach: bins of the sclera's shading profile by distance below the upper lid, over
            ``shadow_reach`` (x W; a linear fit).
        shading_limits: the measured shading factors are clipped to this range.
        tint_limits: the sclera's colour along the eye (each channel's fit over the brightness's) is clipped to
            this range: whiter beside the iris, pinker toward the corners.
        profile_prior: the sclera's colour along the eye starts from one colour and moves toward the footage's
            own fits as far as their sclera samples outweigh this many (n / (n + prior): the shared stills' 40-140
            samples move it a tenth to a third of the way, the clips' 16 model frames' 340-1170 half to four
            fifths).
        iris_ratio_default, pupil_ratio_default: iris radius (x W) and pupil radius (x iris radius) where the
            footage cannot tell.
        lid_inset: the eyeball's coverage ends this far inside the TARGET lid contour (x W, at least half of
            ``min_soft_px``): lashes and make-up on the lid margin stay as the warp put them (the lid margin lies
            on and outside the tracked contour; a wider inset leaves the warp's stretched lash line as a dark rim
            inside a small eye).
        edge_softness: anti-aliased falloff of the coverage at the lid (x W, at least ``min_soft_px`` pixels).
        reach: how far the eyeball reaches into the part of the opening the source already showed (x the lid's
            local outward movement, at most ``reach_max`` x W): it covers the source's old lid margin (its
            lash line), which the warp moved into the widened opening.
        lash_depth, old_lid: where a lid moved out, the source's opening within ``lash_depth`` (x W) of its lid
            is covered too where it shows no eyeball: pixels darker than ``old_lid[0]`` x the eyeball rendered
            there (fully; none from ``old_lid[1]``) are the old lash line and make-up the tracked lid ran inside
            of, which the warp left in the widened opening as a dark band or a notch at a corner (a real sclera
            there in the lid's shade, a little darker than the render, is covered in part: the output is only ever
            brighter). At (0.5, 0.75) and 0.12 a thin line of people_0's old lash stayed at her inner corners.
        old_lid_near: ... and where the lid barely moved (near a corner: the rule above fades out with the lid's
            movement, ``min_move``) but the eyeball covers pixels within this distance (x W), the old lid line is
            covered as they are: left to the warp, it was a thin grey line between the new white and the iris
            disc (people_0 fearful and surprised: her right eye's outer and left eye's inner corner at 10x, a
            pixel or two wide at her size). 0: the movement alone gates it.
        iris_whole, iris_cover: where a lid moves out by ``iris_whole`` (x W) or more (fading in from 0), the
            eyeball covers the whole iris disc out to ``iris_cover`` x its radius (fading over half a radius
            beyond), not only the newly uncovered part: the warp stretches the source's iris (and its lid-shaded
            top) between the parting lids, and a half-drawn iris shows that stretched middle between round
            edges. 0: only the new part.
        iris_own: the drawn iris takes the frame's own iris where its lids leave it (seen round, through the
            eye's similarity; fading over the lid margin), the model's texture only where the lids covered it
            (1; 0: the model's texture throughout, paler and softer on a clip whose iris it averages). Where it
            does, the texture is matched per channel to the iris the frame shows, within ``iris_own_gain``; the
            frame's own iris is taken out to ``iris_own_reach`` x the radius (fading over 0.1), the limbus beyond
            is the texture's (round where the eyeball draws it).
        blend: the soft blend from the rendered eyeball to the warped real eye beyond that reach (x W, at least
            ``edge_softness``, at most the lid's local movement, so a lid that did not move gets none).
        min_soft_px: the smallest falloff in plate pixels.
        min_coverage: coverage below this is dropped (a faint sliver where a lid moved out by a hair), the rest
            rescaled to rise from 0.
        min_move: the eyeball fades in with the lid's local outward movement, fully from this much (x W): a
            sliver a pixel wide stays as the warp put it (the lid's own margin).
        lid_shadow: darkening of the eyeball right under the upper lid (0..1), fading over ``lid_shadow_reach``
            (x W, at least ``min_soft_px`` pixels): the lid and its lashes shade a narrow band of the eyeball, not
            the whole widened opening; on the sclera the darker of this and the measured lid shading ...
        lower_lid_shadow: ... and right above the lower lid, over the same reach.
        corner_shading: where the footage cannot tell how the sclera's brightness falls off along the eye (a few
            pixels of sclera: a small eye, a single still), the eyeball darkens by this fraction toward each
            corner (a sphere's falloff into the eye's corners: ``1 - corner_shading * r**2``, ``r`` rising from 0
            at ``corner_start`` (x half the width, from the middle) to 1 at the corner), over its value at
            ``corner_reference`` (x half the width): the visible sclera's colour is measured beside the iris, and is
            the white's there. Fitted to the eyes that measure it: WDA's and d3's wide-open whites read 0.60-0.71 at
            the outer eighths of the eye over the middle's (0.66 on average) and 0.64-0.86 at the next (0.77),
            which ``0.45`` from the middle gives (0.66, 0.83). It was 0.15 from 0.45 (0.91 and 0.99, no normalising)
            until the thirty-third session: people_0's and d8's widened eyes were flat white discs (looked at, 4x).
            Now their whites are brighter beside the iris and darker into the corners, round; over the new area as
            bright as before (people_0 1.19-1.22 times her visible sclera, from 1.17-1.19; unnormalised, 1.08-1.10,
            they were a dull grey). ``corner_reference`` 0: no normalising (1 in the middle).
        lid_prior: where the footage cannot tell how the upper lid shades the sclera beneath it (no sclera seen
            near a lid: people_0's and d8's stills measured nothing, a flat 1), the sclera under the lid takes this
            fraction of its brightness right under the lid, rising linearly to all of it at ``shadow_reach`` (d3's
            clip, the one shared input that measures it, reads 0.75 right under the lid and 0.92 half way; real
            eyes on the shared footage read 0.70-0.91 at 0.06-0.12 eye widths under the lid,
            ``tests/believable_measures.lid_shade``; a flat white, 0.96, read as a doll's eye). At 0.7 the
            astronaut's 20-pixel eyes, whose new white lies all right under the lid, fell under the eye-white floor
            counted with the lid's own row (0.79-0.80, ``test_whole_edit_uncovers_eye_white_on_small_and_shadowed_eyes``);
            at 0.8 they read 0.83-0.87 and people_0's widened whites 0.92-0.94 under the lid (0.96 flat). 1: flat.
        limbus_softness: the iris edge's anti-aliased width (x W, at least one pixel).
        catch_margin: the source's catchlights are taken from its iris disc inside the lids and up to this far
            outside its tracked upper lid (x W; a tracked upper lid often runs through the catchlight; under the
            lower lid a bright spot is its wet margin or the white, never outside the contour).
        catch_level: a catchlight is brighter than the iris by this share of the way to the white (low, high: from
            none to all of it; a dark plate's catchlights sit a quarter of the way up, WDA around frame 30) and
            brighter than its 5-pixel neighbourhood, small (at most 0.3 iris radii across) ...
        catch_inside: ... and whole inside this many iris radii of the iris centre: the white inside the tracked
            iris disc at its edge is bright against the iris too, and ran onto the drawn iris's rim as a crescent.
        lash_specks, speck_size, speck_contrast: where an eye opens beyond the source, the warp's lash band (within
            ``lash_specks`` x W of the target's upper lid: outside the target opening and in the lid margin the
            eyeball leaves to the warp, ``lid_inset`` + ``edge_softness`` deep; never deeper, where a bright sliver
            is the eye's own white) loses small bright specks: the source's catchlights that lay on or over the
            tracked lid line (it often runs through one) rise with the lashes and read as white dots in them (WDA
            surprised, frames 40 and 55). A speck is what a grey opening of ``speck_size`` x W (an odd number of
            pixels, at least 3; at 0.08, 5 px on WDA, a catchlight with its blur, frame 32, was left as a grey blob)
            takes away, by ``speck_contrast`` (low, high: from none to all) of the visible sclera's luminance; it is
            replaced by the opening's colour (the lashes around it). 0: off.
        grain: the rendered eyeball gets this many times the plate's own grain around the eye (luminance noise, a
            new draw each frame).
        blur: the rendered eyeball is softened by a Gaussian of this sigma (x W) to sit in the plate's softness.
        sclera_dim, iris_contrast: a frame whose brightest "sclera" is dimmer than ``sclera_dim[0]`` x the
            model's (full eyeball from ``sclera_dim[1]``), or whose iris is at least ``iris_contrast`` of its
            sclera's brightness, shows no eye (a blink the tracker missed: lashes and lid in the tracked opening);
            that eye gets no eyeball.
        iris_hue: ... unless that iris differs in colour from its sclera (rg-chromaticity, L1) by at least the
            first (fully from the second): a pale blue-grey iris in a shaded eye is nearly as bright as its white
            (d19's right eye: 0.83 of it, 0.12 apart in colour: its eyeball came in at 0.42, a grey veil over the
            stretched lid); lid skin in both places has one colour (d12's squints: at most 0.08).
        shut_sclera, shut_reference: a shot's eye is shut (its lids kept as the source has them: no widening over
            a wink the tracker missed) where its brightest "sclera" is below ``shut_sclera[0]`` x the same
            eye's own (its 90th percentile over ``shut_reference`` seconds around the frame), open
            from ``shut_sclera[1]`` (:func:`~ned_fx.rendering.eyes.openness.open_weights`).
        lid_lowered, lid_open_height: ... and where its upper lid is lowered (a blink, a look down, a lid half
            shut): the tracked upper lid's height above the corners' line (x W) below ``lid_lowered[0]`` x the
            eye's open height (open from ``lid_lowered[1]``), which is the larger of the shot's 90th percentile
            of that height and ``lid_open_height`` (x W; open eyes read 0.20-0.23 on the shared stills, 0.22-0.27
            at the clips' 90th percentiles: a still, or a shot that looks down throughout, is judged against it).
            d3.mp4 looks down with her lids at 0.12-0.13 of the eye's width for seconds (0.27 open): her lids'
            pale skin read as sclera there, and surprise opened them over a dark flat dome; d12's and WDA's blinks
            (0.05-0.12) had eyeballs drawn on their shut lids.
        pair_spread, pair_lid: an eye whose own upper lid is not up (its height over its open height, as for
            ``lid_lowered``: fully below ``pair_lid[0]``, not at all from ``pair_lid[1]``) is at most
            ``pair_spread`` more open than the other eye: a look down lowers both lids,
            and d3.mp4's frames 76-100 (both lids at 0.56-0.62 of their open height; her right eye showing a
            little sclera, her left only lid) had the right eye widened into a dark dome beside a pinned left one.
            A wink keeps the open eye's lid up, so the open eye is not held by the shut one (d3's winks, frames
            6-22 and 36-46: their weights are as without the rule; keyed to ``seen_lid``, 0.75-0.85, the rule held
            her squinting open eye to 0.2 there); a blink's lids fall together (d12 47: the second eye, its lid
            at 0.7 of its open height, still reads open).
        seen_iris, seen_sclera, seen_lid: an eye the sclera test calls shut is open all the same where the
            picture plainly shows its iris (its disc's median brightness at most ``seen_iris[0]`` x the sclera's;
            none from ``seen_iris[1]``), its sclera is at least ``seen_sclera`` x its own reference (as
            ``shut_sclera``) and its upper lid is up (``seen_lid`` x the open height of ``lid_lowered``). d3.mp4
            turns her head from the light for a second (frames 266-290): one eye's white fell to 0.47-0.62 of
            its own with the iris plain (0.25-0.34) and the lid up (0.89-0.93), and surprise widened the other
            eye alone. A missed wink shows lid skin (0.86-0.96), WDA's and d12's blinks lower the tracked lid
            (0.40-0.61) or show no iris (0.63-1.1).
        sclera_chroma: the rendered sclera's chroma (max - min over the mean of its channels) is at most this
            fraction of the skin's under the eye (its colour and its drift along the eye scaled toward their grey
            as far as needed): what shows of a narrow eye's white is a sliver a few pixels wide between lid skin,
            and the plate's softness and a movie's half-resolution chroma (4:2:0) bleed the skin's colour into
            it (the shot's sclera read 0.41-0.43 of chroma on d12, 0.52-0.64 on d3, 0.27-0.55 on d19, beside
            0.10-0.12 on WDA's wide eyes, whose skin reads 0.52): kept whole, a widened eye showed a pink or
            skin-brown eyeball. Relative to the skin, so a warm or cool cast of the plate stays on the white.
        colour_match_limits: the rendered eyeball is matched to each frame's own visible sclera and iris by a
            gain clipped to this range.
        seam_bins, seam_min, seam_limits: where the eyeball fades into the real eye, it is matched to the real
            sclera there, in this many bins along the eye (only where the real eye is at least ``seam_min`` x as
            bright as the rendered one: sclera, not the old lash line), by a gain clipped to ``seam_limits`` (a
            sclera in the lid's shade is darker than an eye white in the open: no visible step between them);
            the gain fades out over ``seam_reach`` (x W) beyond the source's opening. ``seam_tint_limits``: the
            same seam's colour (each channel's share of the brightness, real over rendered, clipped to this range):
            the rendered white is less coloured than what shows of a narrow eye's sclera (``sclera_chroma``), and
            without it the two met in a two-tone eye (d19's right eye, grey beside pink at 5x).
            ``seam_tint_reach`` (x W): the tint fades across the source's old lid line, from this far inside the
            old opening (the seam lies deeper) to as far outside it; held to the line and faded beyond it as fast
            as the brightness, it drew the old lid line across the new white (a pink band under d19's and d8's
            grey-blue arc, 5x).
        seam_iris: the seam's gain and tint hold on the sclera only, fading to none across the limbus (the iris
            is the frame's own where it shows, its texture matched to that): on the iris as well, the pink of
            d19's small, skin-tinged whites turned his grey-blue irises brown (blue x0.8, at 3-10x). False: on
            the iris too.
    """

    iris_rings: int = 16
    iris_angles: int = 64
    lash_margin: float = 0.05
    min_opening: float = 0.12
    highlight: float = 1.5
    limbus_rise: float = 1.25
    iris_detail: float = 0.3
    iris_side_angle: float = 30.0
    iris_detail_bright: float = 0.12
    sclera_exclusion: float = 1.3
    sclera_floor: float = 0.7
    shading_bins: int = 8
    shadow_bins: int = 4
    shadow_reach: float = 0.2
    shading_limits: tuple[float, float] = (0.75, 1.25)
    tint_limits: tuple[float, float] = (0.9, 1.1)
    profile_prior: float = 300.0
    iris_ratio_default: float = 0.2
    pupil_ratio_default: float = 0.35
    lid_inset: float = 0.015
    edge_softness: float = 0.03
    reach: float = 0.6
    reach_max: float = 0.08
    blend: float = 0.06
    iris_whole: float = 0.1
    iris_cover: float = 1.15
    iris_own: float = 1.0
    iris_own_gain: tuple[float, float] = (0.5, 1.5)
    iris_own_reach: float = 0.85
    lash_depth: float = 0.15
    old_lid: tuple[float, float] = (0.65, 0.9)
    old_lid_near: float = 0.12
    min_soft_px: float = 1.0
    min_coverage: float = 0.1
    min_move: float = 0.05
    lid_shadow: float = 0.15
    lid_shadow_reach: float = 0.1
    lower_lid_shadow: float = 0.1
    corner_shading: float = 0.45
    corner_start: float = 0.0
    corner_reference: float = 0.5
    lid_prior: float = 0.8
    limbus_softness: float = 0.025
    catch_margin: float = 0.08
    catch_level: tuple[float, float] = (0.2, 0.35)
    catch_inside: float = 0.9
    lash_specks: float = 0.08
    speck_size: float = 0.15
    speck_contrast: tuple[float, float] = (0.2, 0.4)
    blur: float = 0.012
    grain: float = 1.0
    sclera_dim: tuple[float, float] = (0.5, 0.75)
    iris_contrast: float = 0.75
    iris_hue: tuple[float, float] = (0.09, 0.11)
    shut_sclera: tuple[float, float] = (0.55, 0.7)
    shut_reference: float = 4.0
    lid_lowered: tuple[float, float] = (0.5, 0.7)
    lid_open_height: float = 0.24
    pair_spread: float = 0.2
    pair_lid: tuple[float, float] = (0.6, 0.75)
    seen_iris: tuple[float, float] = (0.3, 0.45)
    seen_sclera: tuple[float, float] = (0.35, 0.45)
    seen_lid: tuple[float, float] = (0.75, 0.85)
    sclera_chroma: float = 0.35
    colour_match_limits: tuple[float, float] = (0.75, 1.33)
    seam_bins: int = 6
    seam_min: float = 0.6
    seam_limits: tuple[float, float] = (0.88, 1.05)
    seam_reach: float = 0.08
    seam_tint_reach: float = 0.2
    seam_iris: bool = True
    seam_tint_limits: tuple[float, float] = (0.85, 1.15)

    def __post_init__(self) -> None:
        for name in ("iris_rings", "iris_angles", "shading_bins", "shadow_bins", "seam_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 2:
                raise InvalidParameterError(f"EyeConfig.{name} must be an integer >= 2, got {value!r}")
        for name in ("lash_margin", "min_opening", "sclera_exclusion", "sclera_floor", "shadow_reach", "iris_ratio_default",
                     "pupil_ratio_default", "lid_inset", "edge_softness", "reach", "reach_max", "blend", "iris_whole",
                     "iris_cover", "iris_own", "iris_own_reach", "lash_depth",
                     "min_soft_px", "min_coverage", "min_move", "lid_shadow", "lid_shadow_reach", "lower_lid_shadow",
                     "corner_shading", "corner_start", "corner_reference", "highlight", "limbus_softness",
                     "catch_margin",
                     "catch_inside", "blur", "grain",
                     "lash_specks", "speck_size", "limbus_rise",
                     "iris_detail", "iris_detail_bright", "iris_side_angle", "old_lid_near", "iris_contrast", "seam_min", "seam_reach", "seam_tint_reach", "shut_reference", "lid_open_height", "pair_spread",
                     "profile_prior"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise InvalidParameterError(f"EyeConfig.{name} must be a number >= 0, got {value!r}")
        for name in ("sclera_dim", "old_lid", "shut_sclera", "iris_hue", "lid_lowered", "seen_iris", "seen_sclera",
                     "seen_lid", "pair_lid", "speck_contrast", "catch_level"):
            lo, hi = getattr(self, name)
            if not 0 <= lo < hi:
                raise InvalidParameterError(f"EyeConfig.{name} must be (low, high) with 0 <= low < high, "
                                            f"got {getattr(self, name)!r}")
        for name in ("lid_shadow", "lower_lid_shadow", "corner_shading", "corner_start", "corner_reference",
                     "min_coverage"):
            if getattr(self, name) >= 1:
                raise InvalidParameterError(f"EyeConfig.{name} must be below 1, got {getattr(self, name)!r}")
        if not isinstance(self.seam_iris, bool):
            raise InvalidParameterError(f"EyeConfig.seam_iris must be True or False, got {self.seam_iris!r}")
        if not isinstance(self.lid_prior, (int, float)) or not 0 < self.lid_prior <= 1:
            raise InvalidParameterError(f"EyeConfig.lid_prior must be in (0, 1], got {self.lid_prior!r}")
        for name in ("iris_own", "sclera_chroma"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise InvalidParameterError(f"EyeConfig.{name} must be between 0 and 1, got {value!r}")
        for name in ("shading_limits", "tint_limits", "colour_match_limits", "seam_limits", "iris_own_gain",
                     "seam_tint_limits"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= 1 <= hi:
                raise InvalidParameterError(f"EyeConfig.{name} must be (low <= 1 <= high) with low > 0, "
                                            f"got {(lo, hi)!r}")
