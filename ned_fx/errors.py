"""The named exceptions of ned_fx: one per failure a user can meet, each with a message a person can act on.

Everything here derives from :class:`NedFxError`; the CLI prints the message (never a traceback) and exits
with the error's ``exit_code``. This module imports nothing heavy, so host bridges can use it.
"""

from __future__ import annotations


class NedFxError(Exception):
    """Base of every error ned_fx raises on purpose."""

    exit_code = 1


class InputNotFoundError(NedFxError):
    """An input file, sequence or folder does not exist."""

    exit_code = 2


class UnsupportedFormatError(NedFxError):
    """A file's type, pixel type or channel layout is not one ned_fx reads or writes."""

    exit_code = 2


class UnreadableMediaError(NedFxError):
    """A file exists but cannot be decoded (corrupt, truncated, or not what its name says)."""

    exit_code = 3


class InvalidParameterError(NedFxError):
    """A parameter value is out of range or not one of the valid choices (the message lists them)."""

    exit_code = 2


class ShotCutError(InvalidParameterError):
    """The frames to edit hold a shot cut (another shot, often another actor, from a frame on): one edit follows one
    face through one shot. The message gives each shot's frame range (``shots``: ``(first, last)`` frame numbers)."""

    def __init__(self, message: str, shots: tuple = ()):
        super().__init__(message)
        self.shots = tuple(shots)


class WeightsMissingError(NedFxError):
    """The converted network weights are not installed; the message says how to install them."""

    exit_code = 4


class NoFaceError(NedFxError):
    """No face was found where one is required (e.g. a reference image)."""

    exit_code = 5


class OutputWriteError(NedFxError):
    """An output could not be written (full disk, no permission); nothing half-written is left behind."""

    exit_code = 6


class EndpointInUseError(NedFxError):
    """The daemon's endpoint (port or socket) is taken by another process; the message names it (and who, when
    it can tell)."""

    exit_code = 8
