"""Host-agnostic logic of the host bridges (Nuke, Resolve): everything a bridge does except calling the host.

The bridges in ``host_bridges/`` stay thin — they read and set the host's controls and call into here:

* :mod:`.params` — the daemon's parameter descriptors as :class:`~.params.KnobSpec` records a host builds its
  UI from, host values back into ``open`` parameters, an animated intensity as keyframes (standard library
  only: Resolve's Python may lack numpy);
* :mod:`.link` — the connection: per-thread clients, a 2-second liveness check, a status the UI shows;
* :mod:`.wire` — the client as host modules import it (a Python without pyzmq gets install instructions, not an
  ImportError); :mod:`.local_daemon` — a private daemon for a host process that reaches none (farm blades);
* :mod:`.analysis` — a shot's analysis in a background thread, cancellable, reporting through the host's
  main-thread hook;
* :mod:`.frames` — host pixel layouts (Nuke's bottom-up rows and bbox), the mix, rendering frames to files;
* :mod:`.images` — the EXR/PNG reading and writing the bridges need, with numpy and zlib only;
* :mod:`.stamps` — the edit record on a host's stream (Nuke ModifyMetaData lines, what an EXR Write keeps);
* :mod:`.resolve` and :mod:`.runner` — the Resolve pass: timeline clips -> a plan of shots -> outputs.

This package imports nothing at import time; none of it imports torch, the stage packages or the pipeline.
"""

__all__ = ["params", "link", "wire", "local_daemon", "analysis", "frames", "images", "stamps", "resolve", "runner"]
