"""Stand-in of Resolve's ``DaVinciResolveScript`` module (external scripting): ``scriptapp("Resolve")`` returns
the Resolve object a test installed with ``_install(resolve)``, or None (as the real one does when Resolve is not
running or external scripting is off)."""

_app = [None]


def scriptapp(name: str):
    return _app[0] if name == "Resolve" else None


def _install(resolve) -> None:
    _app[0] = resolve
