"""ned_fx for Nuke, no-UI part (runs in every Nuke, also ``nuke -x`` renders): put this folder on NUKE_PATH.

It only makes the ned_fx package importable — from ``$NED_FX_ROOT``, else ``~/.nuke/ned_fx.json``
(``{"root": "/path/to/ned_fx", "endpoint": …, "cache": …}``, written by ``install/nuke.sh``; its endpoint and
cache become ``$NED_FX_ENDPOINT``/``$NED_FX_NUKE_CACHE`` where those are not set), else the checkout this folder
lives in — and registers the before-frame-render hook that edits missing frames during Write renders. Nothing
else runs here; the node's module loads when a node is created or rendered. Nuke's Python needs pyzmq, msgpack
and numpy (``install/nuke.sh --nuke-python PATH`` installs them); without them only Writes that need an Emotion
Director fail, saying so.
"""

import json
import os
import sys

import nuke


def _installed():
    """``~/.nuke/ned_fx.json`` (written by install/nuke.sh): root, endpoint, cache."""
    config = os.path.join(os.path.expanduser("~"), ".nuke", "ned_fx.json")
    try:
        with open(config, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ned_fx_root():
    root = os.environ.get("NED_FX_ROOT", "").strip()
    if not root:
        root = str(_installed().get("root", "")).strip()
    if not root:
        here = os.path.dirname(os.path.abspath(__file__))
        candidate = os.path.dirname(os.path.dirname(here))
        if os.path.isfile(os.path.join(candidate, "ned_fx", "__init__.py")):
            root = candidate
    return root


# the installed endpoint and cache are defaults: what the environment sets (a farm blade's own) wins
for _key, _env in (("endpoint", "NED_FX_ENDPOINT"), ("cache", "NED_FX_NUKE_CACHE")):
    _value = str(_installed().get(_key, "")).strip()
    if _value and not os.environ.get(_env, "").strip():
        os.environ[_env] = _value
_root = _ned_fx_root()
if _root and _root not in sys.path:
    sys.path.append(_root)
_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.append(_here)


def _feeds(write, node):
    """Whether ``node`` is upstream of ``write``."""
    seen, todo = set(), [write]
    while todo and len(seen) < 20000:
        n = todo.pop()
        for i in range(n.inputs()):
            up = n.input(i)
            if up is None or id(up) in seen:
                continue
            if up is node:
                return True
            seen.add(id(up))
            todo.append(up)
    return False


def _ned_fx_before_render():
    """Edit missing frames of the Emotion Director nodes the Write being rendered depends on (cheap when there
    are none). If ned_fx cannot load in this Nuke (a blade without pyzmq/numpy), only Writes that depend on an
    Emotion Director fail, with what to install; every other Write renders as if the node were not there."""
    nodes = [n for n in nuke.allNodes("Group", group=nuke.root(), recurseGroups=True)
             if n.knob("ned_fx_version") is not None]
    if not nodes:
        return
    try:
        import ned_fx_nuke
    except ImportError as exc:
        write = nuke.thisNode()
        fed = [n for n in nodes if not n["disable"].value() and (write is None or _feeds(write, n))]
        if not fed:
            return
        for n in fed:
            n["label"].setValue("ERROR: ned_fx cannot load in this Nuke")
        raise RuntimeError(f"Emotion Director {', '.join(n.fullName() for n in fed)}: this Nuke's Python cannot "
                           f"load ned_fx ({exc}): install pyzmq, msgpack and numpy into it "
                           f"(install/nuke.sh --nuke-python /path/to/Nuke/python3)") from None
    ned_fx_nuke.before_frame_render()


nuke.addBeforeFrameRender(_ned_fx_before_render)
