"""The daemon's side of shared-memory frames: client files read and written with ``preadv``/``pwritev``.

Nothing of a client's file is mapped: a mapped file that its client truncates while the daemon reads it raises
SIGBUS, which kills the daemon and every session. A positional read of a truncated file is only short, which is
an error reply. Descriptors are kept open between renders (opening costs more than copying a 512² frame),
at most ``max_open`` of them (least recently used closed first); each use re-checks that the name is still the
same regular file of this user and size, and :meth:`ShmFiles.prune` closes the descriptors of files their
clients removed, so deleted frame files do not stay alive in ``/dev/shm``.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict

import numpy as np

from .. import protocol as P

_FLAGS = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class ShmFiles:
    """Client frame files by name: ``attach`` (read a copy), ``write`` (write pixels back), ``check``."""

    def __init__(self, max_open: int = 32):
        self.max_open = max_open
        self._fds: "OrderedDict[str, tuple[int, int]]" = OrderedDict()     # name -> (fd, inode)
        self._lock = threading.Lock()

    def _dup(self, spec: P.BufferSpec) -> int:
        """A private duplicate of the name's descriptor after every check (the caller closes it): a descriptor
        evicted meanwhile by another thread can never be reused under our feet."""
        path = P.shm_path(spec.shm)
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise P.ProtocolError(f"cannot open shared memory {spec.shm}: {exc.strerror}", "not_found") from None
        with self._lock:
            hit = self._fds.get(spec.shm)
            if hit is not None and hit[1] == st.st_ino:
                self._fds.move_to_end(spec.shm)
                fd = os.dup(hit[0])
            else:
                fd = None
        if fd is None:
            try:
                fd = os.open(path, _FLAGS)
            except OSError as exc:
                raise P.ProtocolError(f"cannot open shared memory {spec.shm}: {exc.strerror}", "not_found") \
                    from None
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or fst.st_uid != os.getuid():
                os.close(fd)
                raise P.ProtocolError(f"shared memory {spec.shm} is not a regular file of this user", "forbidden")
            with self._lock:
                old = self._fds.pop(spec.shm, None)
                if old is not None:
                    os.close(old[0])
                self._fds[spec.shm] = (os.dup(fd), fst.st_ino)
                while len(self._fds) > self.max_open:
                    _, (evicted, _) = self._fds.popitem(last=False)
                    os.close(evicted)
        size = os.fstat(fd).st_size
        if size != spec.nbytes:
            os.close(fd)
            raise P.ProtocolError(f"shared memory {spec.shm} holds {size} bytes, not the {spec.nbytes} its "
                                  f"{list(spec.shape)} {spec.dtype} buffer needs (truncated or resized by the "
                                  f"client)", "invalid_parameter")
        return fd

    def check(self, spec: P.BufferSpec) -> None:
        """The file is there, this user's, regular and of the spec's size (nothing is read)."""
        os.close(self._dup(spec))

    def attach(self, spec: P.BufferSpec) -> np.ndarray:
        """A copy of the file's pixels (the daemon's own memory: a client truncating its file cannot hurt it)."""
        fd = self._dup(spec)
        try:
            arr = np.empty(spec.shape, dtype=spec.dtype)
            view = memoryview(arr).cast("B")
            got = 0
            while got < spec.nbytes:
                n = os.preadv(fd, [view[got:]], got)
                if n <= 0:
                    break
                got += n
        finally:
            os.close(fd)
        if got != spec.nbytes:
            raise P.ProtocolError(f"shared memory {spec.shm} was cut to {got} bytes while the daemon read it "
                                  f"(the client truncated it)", "invalid_parameter")
        return arr

    def write(self, spec: P.BufferSpec, pixels: np.ndarray) -> None:
        """Write ``pixels`` (of the spec's size) into the file; a file the client truncated meanwhile is grown
        back, never a signal."""
        data = memoryview(np.ascontiguousarray(pixels)).cast("B")
        if data.nbytes != spec.nbytes:
            raise P.ProtocolError("the rendered frame does not fit the shared-memory buffer", "invalid_parameter")
        fd = self._dup(spec)
        try:
            done = 0
            while done < data.nbytes:
                done += os.pwritev(fd, [data[done:]], done)
        finally:
            os.close(fd)

    def forget(self, names) -> None:
        """Close the descriptors of these names (a session that used them ended)."""
        with self._lock:
            for name in names:
                hit = self._fds.pop(name, None)
                if hit is not None:
                    os.close(hit[0])

    def prune(self) -> int:
        """Close descriptors whose file its client removed or replaced; returns how many were closed."""
        with self._lock:
            held = {name: ino for name, (_, ino) in self._fds.items()}
        gone = {}
        for name, ino in held.items():
            try:
                if os.lstat(P.shm_path(name)).st_ino == ino:
                    continue
            except OSError:
                pass
            gone[name] = ino
        with self._lock:
            for name, ino in gone.items():
                hit = self._fds.get(name)
                if hit is not None and hit[1] == ino:        # not re-opened meanwhile
                    os.close(self._fds.pop(name)[0])
        return len(gone)

    def open_count(self) -> int:
        with self._lock:
            return len(self._fds)

    def close(self) -> None:
        self.forget(list(self._fds))
