"""ManipulatorConfig: the one home of the manipulator's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError

#: How the speech channels (jaw drop, lips part, lip pucker, lip pressor) are treated; see
#: :mod:`ned_fx.manipulation.manipulator` for the rule.
SPEECH_MODES = ("auto", "preserve", "free")
#: How a reference's neutral face is obtained when it has no neutral frame of its own.
REFERENCE_NEUTRALS = ("adapted", "own")


@dataclass(frozen=True)
class ManipulatorConfig:
    """Every knob of the expression model and the manipulator.

    Attributes:
        ridge: Tikhonov weight of the per-frame AU fit, relative to each AU's own energy (a lone AU is shrunk by
            ``1 / (1 + ridge)``), so co-operating AUs share the work instead of fighting (0 = plain bounded least
            squares).
        sparsity: optional L1 cost of a first fit step, in activation units x 2, that decides which AUs are at
            work in a frame before an unpenalised refit on those (fewer, more readable AUs; but AUs that partly
            cancel, like AU5 with AU7, are then under-read). 0 (default) = one dense bounded fit.
        z_weight: weight of the depth coordinate in the fit (monocular depth is the noisiest axis).
        max_activation: upper bound of every AU activation in the fit (1 = the strong, natural expression the
            basis was authored for).
        max_mouth_activation: upper bound of the mouth-opening AUs (AU25, AU26); a shout opens wider than 1.
        neutral_mode_fraction: share of the shot's frames around its densest frame (the face the actor keeps
            returning to) the neutral is drawn from.
        neutral_closed_percentile: of those, the frames whose inner-lip gap is at most this percentile (the
            mouth at rest) make the neutral.
        neutral_closed_gap: inter-ocular units; frames with a smaller inner-lip gap count as at rest anyway.
        state_smoothing: seconds; the actor's sustained expression is the lower envelope under every transient
            shorter than twice this (emphasis, blinks, speech: the performance, which is kept), smoothed.
        offset_smoothing: seconds (Gaussian sigma, zero-phase) by which the AU offsets are smoothed, so the edit
            adds no jitter.
        swing_smoothing: seconds (Gaussian sigma, zero-phase); an emotion AU the style does not use (a smile under
            sad, a grimace under surprise) is taken away with every swing slower than this smoothing passes (its
            activation smoothed by it), not only its sustained level: a talker's grin that comes and goes with
            the line would otherwise stay on a sad face. Motion at the pace of speech (syllables, 3-7 a second)
            stays. The style's own AUs keep the actor's slower emphasis (``state_smoothing``). 0.5 s: at 0.15 s
            the lip shapes of a talker's sad edit changed enough within lines that an independent tracker's mouth
            opening followed the source at r 0.944 on WDA (0.952 at 0.5 s; floor 0.95); at 2 s the smile's
            widening shrank (the grin's slower swings stayed).
        pose_smoothing: seconds (Gaussian sigma, zero-phase) by which the head pose that carries the offsets into
            each frame is smoothed: the edit follows the head, not the pose fit's per-frame noise.
        speech: default speech mode: "auto" (mouth-opening AUs of a style are added only to shots where the
            actor is not talking), "preserve" (never), "free" (always; the mouth follows the style).
        talking_threshold: inter-ocular units; a frame counts as speech when the standard deviation of the
            mouth opening over the surrounding ``talking_window`` seconds exceeds it.
        talking_window: seconds of the window above.
        syllable_gap: seconds; speech is a line of mouth openings (peaks of the opening, at least
            ``talking_threshold`` prominent), each at most this long after the one before (syllables come 3-7 a
            second, a pause inside a line is shorter): a single opening, held and released (an expression's
            parted lips or bared teeth), is not speech. A posed grimace's opening and the next one 0.9 s later
            (d3.mp4) are not a line; speech on the shared talking clips has gaps of 0.15-0.7 s.
        talking_fraction: a shot is a talking shot when at least this share of its frames count as speech.
        talking_jaw_gain: in ``auto`` mode, where the speech gate is shut (a talking shot), a style's jaw drop
            (AU26) is not added but scales the source's own mouth opening: by ``1 + gain x`` the style's AU26 (a
            surprised talker at 1, AU26 0.6, opens every syllable 1.3 x as wide with 0.5). The lips still meet
            where the source's meet (m, b, p) and the opening's correlation with the source is unchanged. 0: the
            source's opening exactly.
        smile_lip_gain: the same on a talking shot for a style's smile (AU12): every opening scaled by ``1 + gain
            x`` the style's AU12. A smile stretches the lips thin and an independent tracker reads the smiling
            talker's widest openings 0.05-0.08 IOD less open than they are (MediaPipe on WDA, frames 189, 90, 40,
            0; their correlation with the source fell to 0.949 with the gap kept exactly); 0.15 opens each
            syllable 1.15 x as wide at happy 1 (r 0.956), as a smile parts the lips a little. 0: none.
        brow_lid_gap: the skin between a brow and the upper lid's lash band keeps at least this share of its
            source height, whatever the style: where a lowered brow (AU4, AU9) and a raised upper lid (AU5, the
            glare of anger) would meet or cross (angry at 1 did: the brows sat on the lashes, at 1.5 they crossed
            into the eyes), the offsets that close that gap give way together (lid raise and brow lowering alike,
            so the glare stays a glare; per frame, smoothed over ``offset_smoothing``). 0: no limit.
        brow_margin_gap: the same against the upper lid's margin: the brow's lower edge stays this share of its
            source height over the lid margin, per lid column and from each point of the edge to the margin
            beneath where the edit moves it (the brow lowerer draws the edge's middle down and in over the lid's
            higher middle). The brow lowerer carries the lash band down with the brow, 5-8x as far as the lid, so
            the band alone let anger put d3's brows below her lid margin (a tenth of the frames, down to -0.2 of
            their height; WDA frame 20: the edge's middle 1.2 px over the lid, a jagged fold of lid skin). Small on
            purpose: a brow pressed down onto the lid is anger's look, and an independent classifier's reading of
            d3's anger fell as the brows were held higher (0.15, as ``brow_lid_gap``: +0.175 -> +0.11 on her first
            60 frames; with ``angry``'s upper lip raise, on the 12 of them ``tests/test_readability.py`` renders:
            0.08 +0.149, 0.06 +0.157, 0.05 +0.162, 0.04 +0.164). 0: no limit.
        lid_opening_kept: the eye keeps at least this share of the source's opening (middle of the lid margins,
            in the picture) whatever the style: a lid tightener (AU7), a smile's squint (AU6) or drooping lids
            (sad) act on the frame's own eye, so on a frame where the actor looks down or is half-lidded they
            would shut it (angry at 1 made slits of a downcast eye, which read as a wince). The offsets that close
            it give way together, as for ``brow_lid_gap``. 0: no limit.
        pupil_kept: the upper lid's middle stays at least this share of the source's height over the iris
            centre, whatever the style: an eye looking up or wide open shows white below the iris, so its opening
            is large while its lid sits close over the pupil, and anger taking a wide-eyed look's raised lid away
            (d3 frames 300-353) brought the lid down to the iris centre: pale white slits under pressed brows. The
            upper lid's own AU gives way (AU5: part of the source's raise is kept); a tightener's and a squint's
            work (AU7, AU6) is the lower lid's, and scaled with them it was lost (angry's lower lid no longer rose
            on WDA). A style that droops the lids itself (AU5 < 0: sad) may cover the pupil: a heavy lid is part
            of sadness (held off it, d12's sad read 0.157 -> 0.13 by the classifier). 0: no limit.
        pupil_droop: how far a style's own lid droop (its AU5 below 0, intensity included) lets the lid past
            ``pupil_kept``: not at all at 0, fully from ``-pupil_droop`` on (sad at 1 droops 0.5), in proportion
            between, so a keyframed turn from anger to sadness moves the lid smoothly. 0: a drooping style is held
            like any other.
        lip_seal: on a still, a closing edit that takes away most of the source's lip opening seals the lips:
            per inner-lip column the target's gap is scaled by ``smoothstep((r - lo) / (hi - lo))``, ``r`` the
            target's gap over the source's (lips parted as the AUs put them where the edit takes less than
            ``1 - hi`` of the opening away; sealed where it takes ``1 - lo`` or more). A still's estimated neutral
            keeps the parted lips a relaxed neutral may have (up to 0.04 IOD), and a grin taken away left a line of
            teeth between the astronaut's lips (0.032 IOD; r 0.27 at neutral 1, 0.64 at 0.5). A talker's gap is his
            own (speech): never sealed. ``(0, 0)``: never.
        lip_kept_closed: on a still, lips that touch stay together when the edit takes the source's expression away
            (a relaxed pout, a press let go): per inner-lip column the opening that the AUs the target has less of
            would make is taken back, fully where the source's gap is <= 0 and fading out at this gap (IOD); the
            style's own AUs still part them (a sneer, a jaw). The AUs are linear: taking d8's chin raiser away parted
            his sealed lips by 0.005-0.010 IOD (0.7-1.5 px) under neutral and happy. 0: never.
        still_gasp_kept: on a still, a jaw held wide open (the fit's AU26 activation) stays open under every
            style: the share of the still's speech channels the style would take away is scaled by
            ``1 - smoothstep((AU26 - lo) / (hi - lo))``. A 2-D warp cannot close a gasp believably: closing d19's
            (AU26 1.56) under happy, sad, angry or disgusted stretched his lower lip into a thick band and pushed a
            lumpy fold under it, and half closing it (looked at) was no better; kept, the style's corners, lips and
            upper face go on his open mouth (an open-mouthed laugh, a wail, a shout). ``neutral`` closed it until the
            twenty-fifth session: the chin rose 0.28 IOD and left a pale seam along the raised jaw and a second jaw
            line below it, pale wedges beside the nose and a smeared, jagged upper lip over a dark slit (looked at,
            the warp alone draws them: no face-content stage does); it now relaxes the brows, lids and lip corners
            around the open mouth. A grin's parted lips (a small jaw) are not a gasp. ``(inf, inf)``: never kept
            (every style closes it, as far as it takes the still's speech channels away).
        lid_fold_kept: ``(floor, knee)``: the skin above an upper lid (its crease ring and the lash band's outer
            ring, ``LID_CREASE_R`` and ``LASH_RING_R`` in :mod:`~.expression`) never comes down past the lid margin.
            The brow lowerer's field moves that skin 5-8x as far as the lid (AU4: the hooding of a frown), and,
            linear, it carried the rings through the lid: sad and angry at 1 put them below it on every shared
            input but d12 (d3 angry: 2.8 times their own height below it; the astronaut's lid skin folded over
            her lashes, d3's sad lids showed brown patches, the brow strip laid lid skin over the iris). Per
            column, a ring's height over the lid (``r`` x the source's) is kept at ``r`` above ``knee`` and raised
            below it toward ``floor + (knee - floor) exp((r - knee) / (knee - floor))`` (smooth, monotonic, never
            under ``floor``), but never past an even squeeze of the band from the lid up to the brow's lower
            edge above it: the skin hoods the lid and the lash line stays. ``(0, 0)``: off.
        lid_iris_boost: where a style raises the upper lids (AU5: surprise, fear) and the raised lid would
            still cover the top of the iris, the raise grows on that frame by up to this share of the style's
            own, until the lid clears the iris top by ``lid_iris_clearance`` x the iris radius (the white above
            the iris is what reads). 0: the style's raise as authored.
        lid_iris_clearance: see ``lid_iris_boost``. 0.3: at 0.15 WDA's raised lids showed her iris top and a sliver
            of white (the new area read 0.78 of her sclera's luminance, under the issue's 0.8; 0.82 at 0.3, her
            classifier reading and the other shared faces' unchanged: their raises clear it already).
        max_intensity: largest intensity accepted (1 = the prototype, above = exaggeration).
        lid_exaggeration: past intensity 1, the upper lid's raise (AU5 > 0) grows at this share of the rest's
            rate (surprise at 1.5 raises the lids 1.25x its 1): at the full rate the lids made round doll's eyes
            of surprise and fear at 1.5. A droop (sadness) is not damped. 1: as the rest.
        default_fps: frame rate assumed for tracks that have none (stills).
        lip_correction_radius: inter-ocular units; reach of the correction that keeps the inner-lip gap (mouth
            opening) of the source under emotion offsets.
        reference_neutral: "adapted" (the actor's neutral, adapted to the reference's proportions, stands in for
            the reference's unknown neutral) or "own" (the reference clip's own neutral estimate; needs a clip
            that shows a neutral face part of the time).
        reference_identity_allowance: activation units; with an "adapted" neutral, the reference's upper-face AUs
            (brows, lids, cheeks, nose) are read against another person's face, whose brow height and eye shape
            read as expression (a neutral portrait measured against another actor reads up to ~1 unit of lid
            raise and tightening and a brow lowering of a few % IOD): an activation up to this is taken as
            identity and dropped, one between it and 1 is scaled to 0..1, one above 1 is kept, so a neutral
            reference leaves the actor's brows and eyes alone and a strong one carries in full (at most 0.9).
    """

    ridge: float = 1e-3
    sparsity: float = 0.0
    z_weight: float = 0.5
    max_activation: float = 2.0
    max_mouth_activation: float = 3.0
    neutral_closed_percentile: float = 30.0
    neutral_closed_gap: float = 0.03
    neutral_mode_fraction: float = 0.3
    state_smoothing: float = 0.4
    offset_smoothing: float = 0.08
    swing_smoothing: float = 0.5
    pose_smoothing: float = 0.1
    speech: str = "auto"
    talking_threshold: float = 0.02
    talking_window: float = 1.0
    syllable_gap: float = 0.75
    talking_fraction: float = 0.4
    talking_jaw_gain: float = 0.5
    smile_lip_gain: float = 0.15
    brow_lid_gap: float = 0.15
    brow_margin_gap: float = 0.05
    lid_opening_kept: float = 0.5
    pupil_kept: float = 0.6
    pupil_droop: float = 0.25
    lip_seal: tuple[float, float] = (0.25, 0.6)
    lip_kept_closed: float = 0.02
    still_gasp_kept: tuple[float, float] = (0.6, 1.0)
    lid_fold_kept: tuple[float, float] = (0.3, 0.6)
    lid_iris_boost: float = 0.6
    lid_iris_clearance: float = 0.3
    lid_exaggeration: float = 0.5
    max_intensity: float = 1.5
    default_fps: float = 25.0
    lip_correction_radius: float = 0.07
    reference_neutral: str = "adapted"
    reference_identity_allowance: float = 0.35

    def __post_init__(self) -> None:
        for name in ("ridge", "sparsity", "z_weight", "state_smoothing", "offset_smoothing", "swing_smoothing",
                     "pose_smoothing", "talking_jaw_gain", "smile_lip_gain", "lid_iris_boost", "lid_iris_clearance",
                     "talking_threshold", "reference_identity_allowance", "lip_kept_closed"):
            if getattr(self, name) < 0:
                raise InvalidParameterError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_activation", "max_mouth_activation", "max_intensity", "default_fps",
                     "lip_correction_radius", "talking_window", "syllable_gap"):
            if getattr(self, name) <= 0:
                raise InvalidParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        lo, hi = (float(v) for v in self.lip_seal)
        if not (0.0 <= lo <= hi <= 1.0):
            raise InvalidParameterError(f"lip_seal must be (lo, hi) with 0 <= lo <= hi <= 1, got {self.lip_seal}")
        lo, hi = (float(v) for v in self.still_gasp_kept)
        if not 0.0 <= lo <= hi:                                     # (NaN fails too)
            raise InvalidParameterError(f"still_gasp_kept must be (lo, hi) with 0 <= lo <= hi, got "
                                        f"{self.still_gasp_kept}")
        lo, hi = (float(v) for v in self.lid_fold_kept)
        if not 0.0 <= lo <= hi < 1.0:                               # (NaN fails too)
            raise InvalidParameterError(f"lid_fold_kept must be (floor, knee) with 0 <= floor <= knee < 1, got "
                                        f"{self.lid_fold_kept}")
        if not 0.0 <= self.lid_exaggeration <= 1.0:
            raise InvalidParameterError(f"lid_exaggeration must be in [0, 1], got {self.lid_exaggeration}")
        if not 0.0 <= self.pupil_droop <= 2.0:
            raise InvalidParameterError(f"pupil_droop must be in [0, 2], got {self.pupil_droop}")
        for name in ("brow_lid_gap", "brow_margin_gap", "lid_opening_kept", "pupil_kept"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InvalidParameterError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("neutral_mode_fraction", "talking_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise InvalidParameterError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.neutral_closed_percentile <= 100.0:
            raise InvalidParameterError(f"neutral_closed_percentile must be in 0..100, got "
                                        f"{self.neutral_closed_percentile}")
        if self.neutral_closed_gap < 0:
            raise InvalidParameterError(f"neutral_closed_gap must be >= 0, got {self.neutral_closed_gap}")
        if self.speech not in SPEECH_MODES:
            raise InvalidParameterError(f"unknown speech mode {self.speech!r}; speech modes: {', '.join(SPEECH_MODES)}")
        if self.reference_neutral not in REFERENCE_NEUTRALS:
            raise InvalidParameterError(f"unknown reference_neutral {self.reference_neutral!r}; valid: "
                                        f"{', '.join(REFERENCE_NEUTRALS)}")
