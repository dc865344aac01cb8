"""ned_fx for Nuke, UI part: Nodes > ned_fx > Emotion Director (toolbar and the Nuke menu bar).

Commands are strings, so nothing of ned_fx loads until an artist uses one.
"""

import nuke

_CREATE = "import ned_fx_nuke; ned_fx_nuke.create_node()"
_CHECK = ("import ned_fx_nuke; n = nuke.selectedNode() if nuke.selectedNodes() else None; "
          "ned_fx_nuke.check_daemon(n) if ned_fx_nuke.is_emotion_director(n) else "
          "nuke.message(ned_fx_nuke.link_for('').check().message)")

_toolbar = nuke.toolbar("Nodes").addMenu("ned_fx", tooltip="ned_fx: Emotion Director")
_toolbar.addCommand("Emotion Director", _CREATE, tooltip="change the actor's facial expression (ned_fx daemon)")
_menubar = nuke.menu("Nuke").addMenu("ned_fx")
_menubar.addCommand("Emotion Director", _CREATE)
_menubar.addCommand("Check daemon", _CHECK)
