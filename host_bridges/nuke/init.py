"""ned_fx for Nuke, no-UI part (runs in every Nuke, also ``nuke -x`` renders): put this folder on NUKE_PATH.

It only makes the ned_fx package importable — from ``$NED_FX_ROOT``, else ``~/.nuke/ned_fx.json``
(``{"root": "/path/to/ned_fx"}``, written by ``install/nuke.sh``), else the checkout this folder lives in —
and registers the before-frame-render hook that edits missing frames during Write renders. Nothing else runs
here; the node's module loads when a node is created or rendered. Nuke's Python needs pyzmq, msgpack and
numpy (``install/nuke.sh --nuke-python PATH`` installs them).
"""

import json
import os
import sys

import nuke


def _ned_fx_root():
    root = os.environ.get("NED_FX_ROOT", "").strip()
    if not root:
        config = os.path.join(os.path.expanduser("~"), ".nuke", "ned_fx.json")
        try:
            with open(config, encoding="utf-8") as fh:
                root = str(json.load(fh).get("root", "")).strip()
        except (OSError, ValueError, AttributeError):
            root = ""
    if not root:
        here = os.path.dirname(os.path.abspath(__file__))
        candidate = os.path.dirname(os.path.dirname(here))
        if os.path.isfile(os.path.join(candidate, "ned_fx", "__init__.py")):
            root = candidate
    return root


_root = _ned_fx_root()
if _root and _root not in sys.path:
    sys.path.append(_root)
_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.append(_here)


def _ned_fx_before_render():
    """Edit missing frames of Emotion Director nodes before each rendered frame (cheap when there are none)."""
    if not any(n.knob("ned_fx_version") is not None for n in nuke.allNodes("Group", recurseGroups=True)):
        return
    import ned_fx_nuke

    ned_fx_nuke.before_frame_render()


nuke.addBeforeFrameRender(_ned_fx_before_render)
