"""``ned-fx edit``: the main job. A plate goes in, the same plate comes out with the actor's expression changed.

    ned-fx edit shot.mov -o shot_happy.mov --emotion happy --intensity 0.8 --preview before_after.mp4
    ned-fx edit plates/shot.####.exr --frames 1001-1100 -o out/shot_sad.####.exr --emotion sad
    ned-fx edit take.mov -o take_happy.mp4 --emotion happy --consent REL-2231 --sign-cert chain.pem --sign-key key.pem

Every output says it was edited (provenance in its own metadata: see `ned-fx provenance FILE`); --sign-cert and
--sign-key add signed C2PA Content Credentials to a still or movie; the edit is recorded in the audit log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``edit`` sub-command."""
    from ..cli import add_tracker_options
    from .manipulate import add_instruction_options, epilog

    p = subparsers.add_parser("edit", help="change the actor's expression in a plate (the main job)",
                              description="Change the actor's expression in a movie, still or image sequence, "
                              "keeping speech, identity, head pose and every pixel outside the face.",
                              epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="movie, still, or sequence (shot.%%04d.exr, shot.####.exr); never modified")
    p.add_argument("-o", "--output", required=True,
                   help="sequence pattern (frame numbers kept), movie (fps, size, audio kept) or still")
    p.add_argument("--frames", help="frame range, e.g. 1001-1100 (movies: 0-based frame indices)")
    p.add_argument("--face", type=int, help="face id to edit (see `ned-fx track`; default the main face)")
    p.add_argument("--preview", help="side-by-side before/after: .png (first frame) or .mp4/.mov")
    p.add_argument("--no-resume", action="store_true", help="render every frame again even if already written")
    p.add_argument("--no-cache", action="store_true",
                   help="track the shot again: neither read nor write the shot's cached track ($NED_FX_HOME/cache; "
                        "by default a second edit of the same plate, frames, face and tracker settings skips tracking)")
    p.add_argument("--analysis", metavar="FILE.npz",
                   help="shot analysis file (track + edit plan): used if it exists (made for the same source, "
                        "instruction and face), else written; farm tasks render chunks of a shot analysed once")
    p.add_argument("--analysis-only", action="store_true",
                   help="write --analysis and stop (the farm's first layer; --frames is then the whole shot)")
    p.add_argument("--linearize", action="store_true",
                   help="when the output format cannot hold the plate's pixels (an 8/16-bit plate to EXR, a float "
                        "plate to PNG/JPEG): convert through the sRGB curve (scene-linear EXR) instead of the "
                        "default display-referred code / white")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    rend = p.add_argument_group("renderer")
    rend.add_argument("--renderer", choices=["geometry", "neural"], default="geometry",
                      help="geometry (default): warp the face; neural: the actor's neural renderer refines the warp "
                           "(teeth, creases, lids the source never showed; needs --checkpoint)")
    rend.add_argument("--checkpoint", metavar="ACTOR.ckpt",
                      help="the actor's neural renderer, from `ned-fx train-renderer FOOTAGE -o ACTOR.ckpt`")
    content = p.add_argument_group("face content (what a warp cannot move: mouth interior, eyeballs, occluders)")
    content.add_argument("--actor-footage", nargs="+", metavar="FILE", default=(),
                         help="more footage of the same actor (movies, stills, sequences): a library of real mouth "
                              "interiors and eyes for this shot (never edited)")
    content.add_argument("--holdout-matte", metavar="MATTE",
                         help="a holdout matte (still or sequence pattern, 1 = keep the plate: glasses, hands, "
                              "hair): replaces occluder detection on the frames it has")
    content.add_argument("--no-content", metavar="PARTS", type=_content_parts, default=frozenset(),
                         help="switch face-content sub-stages off: any of mouth,eyes,skin,brows,occluders (comma-separated)")
    content.add_argument("--shutter-angle", metavar="DEGREES", type=_shutter_angle, default=None,
                         help="the camera's shutter angle (default 180): the drawn folds take the plate's motion "
                              "blur, the face's movement over that share of a frame; 0: drawn sharp")
    layer = p.add_argument_group("layers and delivery (what a compositor or colorist layers over the plate)")
    layer.add_argument("--layer", choices=["full", "patch"], default="full",
                       help="full (default): the whole frame; patch: only the edited region, premultiplied alpha "
                            "over transparent black at the plate's size (EXR, 16-bit PNG/TIFF, ProRes 4444 .mov): "
                            "`over` the plate it gives the full-frame edit back")
    layer.add_argument("--matte", nargs="?", const="ned.matte", default=None, metavar="LAYER",
                       help="also write the edit's matte (the compositor's blend weights): channel LAYER.matte of "
                            "EXR outputs (default ned.matte; a name with a dot is the whole channel name), else "
                            "NAME.matte.* beside the output")
    layer.add_argument("--yuv-conversion", choices=["exact", "ffmpeg"], default="exact",
                       help="how a movie source's YUV becomes RGB: exact (default: exact rounding, full chroma "
                            "interpolation) or ffmpeg (FFmpeg's/OpenCV's default, bit for bit: what most hosts show)")
    layer.add_argument("--codec", choices=_movie_codecs(), default=None,
                       help="movie output codec: libx264, prores_ks (ProRes 422 HQ), prores_4444 (with "
                            "alpha; the default for --layer patch), dnxhr_hq, dnxhr_hqx, dnxhr_444, ...; default: "
                            "the source movie's own where the output's container holds it (ProRes in, ProRes out, "
                            "10-bit kept), else the container's usual one (H.264; VP9 for .webm); the "
                            "source's timecode and reel name are carried (a movie's timecode track, an EXR/DPX "
                            "sequence's header timecode; EXR/DPX outputs get each frame's in their headers)")
    prov = p.add_argument_group("provenance, consent and audit")
    prov.add_argument("--consent", metavar="TEXT",
                      help="the performer's consent reference (release id or free text): carried into every "
                           "output's provenance and the audit log")
    prov.add_argument("--sign-cert", metavar="CHAIN.pem",
                      help="sign the output (a still or movie: PNG, JPEG, TIFF, MP4, MOV) with C2PA Content "
                           "Credentials: the signing certificate, then its issuing CA(s)")
    prov.add_argument("--sign-key", metavar="KEY.pem", help="the signing certificate's private key (PEM)")
    prov.add_argument("--sign-alg", default="es256",
                      help="the key's signing algorithm: es256 (default), es384, es512, ps256, ps384, ps512, ed25519")
    audit = prov.add_mutually_exclusive_group()
    audit.add_argument("--audit-log", metavar="FILE",
                       help="append the edit's audit line here (default $NED_FX_HOME/audit.jsonl)")
    audit.add_argument("--no-audit-log", action="store_true", help="write no audit line")
    add_instruction_options(p)
    add_tracker_options(p)
    p.set_defaults(func=run)
    return p


CONTENT_PARTS = ("mouth", "eyes", "skin", "brows", "occluders")


def _movie_codecs() -> list[str]:
    from ..media.writers import MOVIE_CODECS

    return list(MOVIE_CODECS)


def layers_from_args(args):
    """The :class:`~ned_fx.media.layers.LayerConfig` of the layer/delivery options."""
    from ..media.layers import MATTE_CHANNEL, LayerConfig

    matte = getattr(args, "matte", None)
    if matte is not None and matte.strip() and "." not in matte:
        matte = f"{matte.strip()}.matte"            # a layer name: its matte channel
    return LayerConfig(layer=getattr(args, "layer", "full"), matte=matte is not None,
                       matte_channel=matte or MATTE_CHANNEL,
                       yuv_conversion=getattr(args, "yuv_conversion", "exact"), codec=getattr(args, "codec", None))


def _content_parts(text: str) -> frozenset:
    parts = frozenset(p.strip() for p in text.split(",") if p.strip())
    bad = sorted(parts - set(CONTENT_PARTS))
    if bad:
        raise argparse.ArgumentTypeError(f"unknown part(s) {', '.join(bad)}; valid: {', '.join(CONTENT_PARTS)}")
    return parts


def _shutter_angle(text: str) -> float:
    """``--shutter-angle``'s value as ``ContentConfig.shutter`` (a fraction of the frame)."""
    from ..appearance import shutter_from_angle
    from ..errors import InvalidParameterError

    try:
        return shutter_from_angle(float(text))
    except (ValueError, InvalidParameterError):
        raise argparse.ArgumentTypeError(f"a shutter angle is 0..360 degrees, got {text!r}") from None


def content_from_args(args):
    """The :class:`~ned_fx.appearance.ContentConfig` of the face-content options."""
    from ..appearance import ContentConfig

    off = getattr(args, "no_content", frozenset())
    shutter = getattr(args, "shutter_angle", None)              # already a fraction (_shutter_angle)
    shutter = {} if shutter is None else {"shutter": shutter}
    return ContentConfig(mouth="mouth" not in off, eyes="eyes" not in off, skin="skin" not in off,
                         occluders="occluders" not in off, brows="brows" not in off,
                         holdout=getattr(args, "holdout_matte", None), **shutter)


def run(args) -> int:
    from ..cli import progress_bar, tracker_config
    from ..media.frames import describe_numbers
    from ..pipeline import edit_media
    from .manipulate import instruction_from_args

    instruction = instruction_from_args(args)          # edit_media validates it before any work
    layers = layers_from_args(args)
    if bool(args.sign_cert) != bool(args.sign_key):
        from ..errors import InvalidParameterError

        raise InvalidParameterError("C2PA signing needs both --sign-cert CHAIN.pem and --sign-key KEY.pem")
    sign = (args.sign_cert, args.sign_key) if args.sign_cert else None
    audit = None
    if not args.no_audit_log and not args.analysis_only:
        from ..provenance import AuditLog

        audit = AuditLog(args.audit_log, application="ned-fx edit")
    bars: dict = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            for other in list(bars):
                bars.pop(other)[1]()
            bars[stage] = progress_bar(stage, args.quiet)
        update = bars[stage][0]
        if update:
            update(done, total)

    try:
        summary = edit_media(Path(args.input), Path(args.output), instruction, frames=args.frames,
                             face_id=args.face, preview=args.preview, tracker_config=tracker_config(args),
                             progress=progress, resume=not args.no_resume, analysis=args.analysis,
                             analysis_only=args.analysis_only, consent=args.consent, audit=audit, sign=sign,
                             sign_alg=args.sign_alg, renderer=args.renderer, checkpoint=args.checkpoint,
                             content=content_from_args(args), actor_footage=tuple(args.actor_footage or ()),
                             linearize=args.linearize, layers=layers, track_cache=not args.no_cache)
    finally:
        for _, close in bars.values():
            close()
    s = summary
    total = s.wall_seconds or sum(s.seconds.values())      # (the stages overlap: their sum is more than this)
    if args.analysis_only:
        print(f"analysed {args.input} (face {s.face_id}) in {total:.1f}s; wrote {s.analysis}")
        return 0
    print(f"edited {len(s.edited)} of {s.frames} frame(s) of {args.input} (face {s.face_id}) in {total:.1f}s "
          f"({s.fps():.1f} frames/s)")
    reasons: dict[str, list[int]] = {}
    for number, reason in s.passed_through.items():
        reasons.setdefault(reason, []).append(number)
    for reason, numbers in reasons.items():
        print(f"passed through unchanged ({reason}): {len(numbers)} frame(s): {describe_numbers(numbers)}")
    if s.restarted:
        print(f"rendered every frame of {args.output} again: {s.restarted}")
    if s.field_order:
        first = "top" if s.field_order in ("tt", "tb") else "bottom"
        print(f"note: {args.input} is interlaced ({first} field first): each frame was edited whole, both fields "
              f"together (where the head moves fast the edited face may comb; deinterlace the plate first where that "
              f"shows); a movie output is tagged with the same field order (H.264: field-coded)")
    if s.resumed:
        print(f"kept {len(s.resumed)} frame(s) already written by the same edit: {describe_numbers(list(s.resumed))}")
    print("time per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in s.seconds.items()))
    if s.track_cached:
        print("the shot's track was read from the analysis cache (the plate's content is unchanged): not tracked "
              "again; `--no-cache` tracks it afresh")
    print(f"wrote {s.output}" + (" (a patch: premultiplied alpha)" if s.layer == "patch" else "")
          + (" (signed: C2PA Content Credentials)" if s.signed else ""))
    if s.matte:
        print(f"matte: {s.matte}")
    if s.preview:
        print(f"wrote {s.preview}")
    if audit is not None:
        print(f"audit: {audit.path}")
    sys.stdout.flush()
    return 0
