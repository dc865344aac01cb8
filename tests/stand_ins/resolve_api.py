"""A faithful stand-in of DaVinci Resolve's scripting objects (Resolve cannot be installed on development and CI
machines): Resolve, ProjectManager, Project, MediaPool, Folder, MediaStorage, Timeline, TimelineItem,
MediaPoolItem, and Fusion's UIManager/UIDispatcher for the dialog.

Method names, arguments and return conventions follow Resolve's scripting README (Developer/Scripting/
README.txt): methods return ``None``/``False``/``[]`` on failure rather than raising; track indices are 1-based;
``GetItemListInTrack(type, index)``; ``GetClipProperty("File Path")``; ``ImportMedia([{"FilePath", "StartIndex",
"EndIndex"}])`` imports a ``%0Nd`` sequence as one clip named ``name.[first-last].ext``;
``AppendToTimeline([{"mediaPoolItem", "startFrame", "endFrame", "mediaType", "trackIndex", "recordFrame"}])``
places clips on the current timeline and returns the new TimelineItems; ``AddTrack("video")`` appends a track.

It checks what Resolve would refuse: a clipInfo with unknown keys or missing items, a track index out of range,
overlapping clips on a track, an image sequence whose files do not exist. Every call is recorded in ``calls``.

And it behaves like the hosts studios run, not only like the README (issue 16's review of current builds):
``AppendToTimeline``'s ``endFrame`` is exclusive on current Studio builds (``Project(end_exclusive=True)``: one
frame short when a script follows the README's inclusive reading); ``GetSourceStartFrame``/``GetSourceEndFrame``
can be off by one, in the media's rate, or 0/0 on XML-imported timelines (``TimelineItem(source_start=…,
source_end=…)``) while ``GetLeftOffset`` is right; ``Timeline.GetSelectedClips()`` exists only from 21.0.4
(``Timeline(selection=[…])``); timeline markers (``AddMarker``/``GetMarkers``) are keyed by their offset from the
timeline's start, not by record frame; Resolve (free) 19.1+ gives scripts no UIManager (``Fusion(ui=False)``,
``Resolve(studio=False)``: ``GetProductName()`` is "DaVinci Resolve").
"""

from __future__ import annotations

import os
import re
from typing import Any

calls: list[tuple] = []


def _record(*call) -> None:
    calls.append(call)


class MediaPoolItem:
    def __init__(self, name: str, properties: dict[str, Any], frames: int | None = None):
        self._name = name
        self._props = dict(properties)
        self._frames = frames
        self._id = f"mpi-{id(self):x}"

    def GetName(self) -> str:
        return self._name

    def GetClipProperty(self, propertyName: str | None = None):
        _record("GetClipProperty", self._name, propertyName)
        if propertyName is None:
            return dict(self._props)
        return self._props.get(propertyName, "")

    def SetClipProperty(self, propertyName: str, propertyValue: str) -> bool:
        """Clip Attributes as Resolve's dialog offers them (only the Alpha mode values are modelled)."""
        _record("SetClipProperty", self._name, propertyName, propertyValue)
        if propertyName == "Alpha mode" and propertyValue not in ("None", "Straight", "Premultiplied"):
            return False
        self._props[propertyName] = propertyValue
        return True

    def GetMediaId(self) -> str:
        return self._id

    def GetUniqueId(self) -> str:
        return self._id


class TimelineItem:
    def __init__(self, name: str, media: MediaPoolItem | None, start: int, duration: int, left_offset: int = 0,
                 color: str = "", track: int = 1, source_span: int | None = None, source_start: int | None = None,
                 source_end: int | None = None):
        self._name, self._media = name, media
        self._start, self._duration, self._left = int(start), int(duration), int(left_offset)
        self._color = color
        self._track = track
        self._span = duration if source_span is None else source_span
        self._source = (source_start, source_end)      # what GetSourceStart/EndFrame report, when they are off
        self._id = f"ti-{id(self):x}"

    def GetName(self) -> str:
        return self._name

    def GetDuration(self) -> int:
        return self._duration

    def GetStart(self) -> int:
        return self._start

    def GetEnd(self) -> int:
        return self._start + self._duration

    def GetLeftOffset(self) -> int:
        return self._left

    def GetRightOffset(self) -> int:
        return 0

    def GetSourceStartFrame(self) -> int:
        return self._left if self._source[0] is None else self._source[0]

    def GetSourceEndFrame(self) -> int:
        return self._left + self._span - 1 if self._source[1] is None else self._source[1]

    def GetMediaPoolItem(self) -> MediaPoolItem | None:
        return self._media

    def GetClipColor(self) -> str:
        return self._color

    def SetClipColor(self, colorName: str) -> bool:
        self._color = colorName
        return True

    def GetTrackTypeAndIndex(self) -> list:
        return ["video", self._track]

    def GetUniqueId(self) -> str:
        return self._id


class Timeline:
    def __init__(self, name: str, tracks: int = 1, start_frame: int = 86400, selection: list | None = None):
        self._name = name
        if selection is not None:            # Resolve 21.0.4+: Timeline.GetSelectedClips()
            self._selection = list(selection)
            self.GetSelectedClips = lambda: list(self._selection)
        self._tracks: list[list[TimelineItem]] = [[] for _ in range(tracks)]
        self._track_names = [f"Video {i + 1}" for i in range(tracks)]
        self._start = start_frame
        self._current: TimelineItem | None = None
        self._markers: dict[float, dict] = {}

    def GetName(self) -> str:
        return self._name

    # Timeline markers, as Resolve's scripting README (Developer/Scripting/README.txt, "Timeline") documents them:
    #   AddMarker(frameId, color, name, note, duration, customData) --> Bool
    #   GetMarkers() --> {markers...}  "Returns a dict (frameId -> {information}) of all markers [...] a value of
    #   {96.0: {'color': 'Green', 'duration': 1.0, 'note': '', 'name': 'Marker 1', 'customData': ''}, ...}
    #   indicates a single green marker at timeline offset 96"
    # so the keys are floats counted from the timeline's first frame (GetStartFrame(), e.g. 86400 at 01:00:00:00),
    # not record frames like TimelineItem.GetStart(). Being a dict keyed by frame, one marker per frame: a second
    # AddMarker at a taken frame fails, as does a colour Resolve does not have (MARKER_COLORS) or a duration < 1.
    MARKER_COLORS = ("Blue", "Cyan", "Green", "Yellow", "Red", "Pink", "Purple", "Fuchsia", "Rose", "Lavender",
                     "Sky", "Mint", "Lemon", "Sand", "Cocoa", "Cream")

    def AddMarker(self, frameId: float, color: str, name: str, note: str, duration: float,
                  customData: str = "") -> bool:
        _record("AddMarker", frameId, color, name, note, duration, customData)
        frame = float(frameId)
        if frame < 0 or frame in self._markers or color not in self.MARKER_COLORS or float(duration) < 1:
            return False
        self._markers[frame] = {"color": color, "duration": float(duration), "note": note, "name": name,
                                "customData": customData}
        return True

    def GetMarkers(self) -> dict:
        _record("GetMarkers")
        return {frame: dict(info) for frame, info in sorted(self._markers.items())}

    def GetStartFrame(self) -> int:
        return self._start

    def GetTrackCount(self, trackType: str) -> int:
        return len(self._tracks) if trackType == "video" else 0

    def GetItemListInTrack(self, trackType: str, index: int) -> list:
        _record("GetItemListInTrack", trackType, index)
        if trackType != "video" or not 1 <= index <= len(self._tracks):
            return []
        return list(self._tracks[index - 1])

    def AddTrack(self, trackType: str, subTrackType: Any = None) -> bool:
        _record("AddTrack", trackType)
        if trackType != "video":
            return False
        self._tracks.append([])
        self._track_names.append(f"Video {len(self._tracks)}")
        return True

    def GetTrackName(self, trackType: str, trackIndex: int) -> str:
        return self._track_names[trackIndex - 1]

    def SetTrackName(self, trackType: str, trackIndex: int, name: str) -> bool:
        _record("SetTrackName", trackType, trackIndex, name)
        if not 1 <= trackIndex <= len(self._tracks):
            return False
        self._track_names[trackIndex - 1] = name
        return True

    def GetCurrentVideoItem(self) -> TimelineItem | None:
        return self._current

    def DeleteClips(self, timelineItems: list, ripple: bool = False) -> bool:
        """README: DeleteClips([timelineItems], Bool) --> Bool (ripple delete when the second argument is True)."""
        _record("DeleteClips", [i.GetName() for i in timelineItems], ripple)
        found = False
        for track in self._tracks:
            for item in list(track):
                if item in timelineItems:
                    track.remove(item)
                    found = True
        return found

    # stand-in helpers (not Resolve API)
    def _add(self, item: TimelineItem, track: int = 1) -> TimelineItem:
        item._track = track
        self._tracks[track - 1].append(item)
        self._tracks[track - 1].sort(key=lambda i: i._start)
        return item

    def _place(self, item: TimelineItem, track: int) -> bool:
        for other in self._tracks[track - 1]:
            if item._start < other.GetEnd() and other._start < item.GetEnd():
                return False
        self._add(item, track)
        return True


class Folder:
    def __init__(self, name: str):
        self._name = name
        self._clips: list[MediaPoolItem] = []
        self._subs: list[Folder] = []

    def GetName(self) -> str:
        return self._name

    def GetClipList(self) -> list:
        return list(self._clips)

    def GetSubFolderList(self) -> list:
        return list(self._subs)


_CLIPINFO_KEYS = {"mediaPoolItem", "startFrame", "endFrame", "mediaType", "trackIndex", "recordFrame"}
_IMPORT_KEYS = {"FilePath", "StartIndex", "EndIndex"}


class MediaPool:
    def __init__(self, project: "Project"):
        self._project = project
        self._root = Folder("Master")
        self._current = self._root

    def GetRootFolder(self) -> Folder:
        return self._root

    def GetCurrentFolder(self) -> Folder:
        return self._current

    def SetCurrentFolder(self, folder: Folder) -> bool:
        _record("SetCurrentFolder", folder.GetName() if folder else None)
        if not isinstance(folder, Folder):
            return False
        self._current = folder
        return True

    def AddSubFolder(self, folder: Folder, name: str) -> Folder:
        _record("AddSubFolder", folder.GetName(), name)
        sub = Folder(name)
        folder._subs.append(sub)
        return sub

    def ImportMedia(self, items: list) -> list:
        _record("ImportMedia", items)
        out = []
        for info in items:
            if isinstance(info, str):
                if not os.path.exists(info):
                    continue
                mpi = MediaPoolItem(os.path.basename(info), {"File Path": info})
            else:
                if not isinstance(info, dict) or set(info) - _IMPORT_KEYS or "FilePath" not in info:
                    continue
                pattern, first, last = info["FilePath"], int(info["StartIndex"]), int(info["EndIndex"])
                m = re.search(r"%0(\d+)d", pattern)
                if not m:
                    continue
                files = [pattern.replace(m.group(0), f"{n:0{int(m.group(1))}d}") for n in range(first, last + 1)]
                if not all(os.path.isfile(f) for f in files):
                    continue
                shown = pattern.replace(m.group(0), f"[{first:0{int(m.group(1))}d}-{last:0{int(m.group(1))}d}]")
                mpi = MediaPoolItem(os.path.basename(shown), {"File Path": shown, "Frames": str(last - first + 1)},
                                    frames=last - first + 1)
            self._current._clips.append(mpi)
            out.append(mpi)
        return out

    def AppendToTimeline(self, *clips) -> list:
        _record("AppendToTimeline", clips)
        infos = clips[0] if len(clips) == 1 and isinstance(clips[0], list) else list(clips)
        timeline = self._project.GetCurrentTimeline()
        out = []
        for info in infos:
            if not isinstance(info, dict) or set(info) - _CLIPINFO_KEYS or not isinstance(
                    info.get("mediaPoolItem"), MediaPoolItem):
                return []
            mpi, start, end = info["mediaPoolItem"], int(info["startFrame"]), int(info["endFrame"])
            last = end - 1 if self._project._end_exclusive else end
            if mpi._frames is not None and not 0 <= start <= last < mpi._frames:
                return []
            track = int(info.get("trackIndex", 1))
            if not 1 <= track <= timeline.GetTrackCount("video"):
                return []
            record = int(info.get("recordFrame", timeline.GetStartFrame()))
            length = end - start if self._project._end_exclusive else end - start + 1
            item = TimelineItem(mpi.GetName(), mpi, record, length, start, track=track)
            if not timeline._place(item, track):
                return []
            out.append(item)
        return out


class MediaStorage:
    def GetMountedVolumeList(self) -> list:
        return ["/"]

    def AddItemListToMediaPool(self, *items) -> list:
        return []


class Project:
    def __init__(self, name: str, render_jobs: list | None = None, end_exclusive: bool = False):
        self._name = name
        self._end_exclusive = end_exclusive
        self._timelines: list[Timeline] = []
        self._current: Timeline | None = None
        self._pool = MediaPool(self)
        self._jobs = list(render_jobs or [])
        self._settings = {"timelineFrameRate": "25"}

    def GetName(self) -> str:
        return self._name

    def GetMediaPool(self) -> MediaPool:
        return self._pool

    def GetTimelineCount(self) -> int:
        return len(self._timelines)

    def GetTimelineByIndex(self, idx: int) -> Timeline | None:
        return self._timelines[idx - 1] if 1 <= idx <= len(self._timelines) else None

    def GetCurrentTimeline(self) -> Timeline | None:
        return self._current

    def SetCurrentTimeline(self, timeline: Timeline) -> bool:
        if timeline not in self._timelines:
            return False
        self._current = timeline
        return True

    def GetRenderJobList(self) -> list:
        return [dict(j) for j in self._jobs]

    def GetSetting(self, settingName: str | None = None):
        return dict(self._settings) if settingName is None else self._settings.get(settingName, "")

    def _add_timeline(self, timeline: Timeline) -> Timeline:
        self._timelines.append(timeline)
        self._current = timeline
        return timeline


class ProjectManager:
    def __init__(self, project: Project | None):
        self._project = project

    def GetCurrentProject(self) -> Project | None:
        return self._project


class Resolve:
    def __init__(self, project: Project | None, studio: bool = True, version: str = "19.1.3.7"):
        self._pm = ProjectManager(project)
        self._storage = MediaStorage()
        self._studio, self._version = studio, version

    def GetProjectManager(self) -> ProjectManager:
        return self._pm

    def GetMediaStorage(self) -> MediaStorage:
        return self._storage

    def GetProductName(self) -> str:
        return "DaVinci Resolve Studio" if self._studio else "DaVinci Resolve"

    def GetVersionString(self) -> str:
        return self._version


# ---- Fusion UIManager (the dialog) --------------------------------------------------------------------------

class _Widget:
    def __init__(self, kind: str, props: dict | list | None = None):
        self.kind = kind
        self.props = dict(props) if isinstance(props, dict) else {}
        self.children = props if isinstance(props, list) else []
        self.items: list[str] = []
        self.CurrentIndex = 0
        for k in ("Text", "Value", "Checked"):
            if k in self.props:
                setattr(self, k, self.props[k])

    def AddItems(self, items: list) -> None:
        self.items.extend(items)

    @property
    def CurrentText(self) -> str:
        return self.items[self.CurrentIndex] if self.items else ""


class UIManager:
    """Records the widgets built; ``ui.ComboBox({...})`` etc."""

    KINDS = ("VGroup", "HGroup", "Label", "Button", "ComboBox", "LineEdit", "SpinBox", "DoubleSpinBox", "CheckBox")

    def __getattr__(self, kind: str):
        if kind not in self.KINDS:
            raise AttributeError(f"UIManager has no widget {kind}")
        return lambda props=None: _Widget(kind, props)


class _Handlers:
    def __init__(self):
        self.__dict__["_by_id"] = {}

    def __getattr__(self, wid: str):
        return self._by_id.setdefault(wid, type("Events", (), {})())


class _Window:
    def __init__(self, props: dict, layout: _Widget):
        self.props, self.layout = props, layout
        self.On = _Handlers()
        self.shown = False

    def GetItems(self) -> dict:
        found = {}

        def walk(w):
            if isinstance(w, _Widget):
                if "ID" in w.props:
                    found[w.props["ID"]] = w
                for c in w.children:
                    walk(c)

        walk(self.layout)
        return found

    def Show(self) -> None:
        self.shown = True

    def Hide(self) -> None:
        self.shown = False


class UIDispatcher:
    """``bmd.UIDispatcher(ui)``; ``RunLoop`` calls ``on_run_loop(window)`` (the test plays the artist)."""

    on_run_loop = None

    def __init__(self, ui: UIManager):
        self.ui = ui
        self.windows: list[_Window] = []

    def AddWindow(self, props: dict, layout: _Widget) -> _Window:
        w = _Window(props, layout)
        self.windows.append(w)
        return w

    def RunLoop(self) -> None:
        if UIDispatcher.on_run_loop is not None:
            UIDispatcher.on_run_loop(self.windows[-1])

    def ExitLoop(self) -> None:
        pass


class Fusion:
    def __init__(self, ui: bool = True):
        self.UIManager = UIManager() if ui else None     # Resolve (free) 19.1+: no UIManager for scripts


class Bmd:
    UIDispatcher = UIDispatcher
