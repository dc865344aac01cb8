"""ned_fx — Emotion Director.

Changes the facial expression of an actor in real footage while speech, identity, head pose and everything
outside the face stay as they were. Importing this package does no work: stages load their engines on demand.
"""

__version__ = "0.1.0"
