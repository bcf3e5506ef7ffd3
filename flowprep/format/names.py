"""The names an extraction folder holds, and the one rule for each: a video id (a manifest's
row, index.json, a shard's group, a frame folder), a label name, a shard's file name as index.json
names it. Each check returns why a name cannot be used, or None; its message shows the name
escaped (runkit.safe_paths.shown), never raw: the name may come from a folder made elsewhere."""
from __future__ import annotations

import os
import re

from runkit.safe_paths import CONTROL, has_control, shown

MAX_ID_LENGTH = 200
MAX_LABEL_NAME_LENGTH = 200
ID_RULE = (f"a video id is 1-{MAX_ID_LENGTH} characters, not '.' or '..', with no '/', '\\' "
           "or control characters")
SHARD_NAME_RULE = "a shard is named by a plain file name inside the folder (no '/', '\\', '..', not absolute)"

_NOT_IN_ID = re.compile(r"[/\\" + CONTROL.pattern[1:])


def check_video_id(video_id: object) -> str | None:
    """Why `video_id` cannot name a video (a shard's group, a frame folder, a log line), or None:
    the rule manifests, index.json and shards all follow."""
    if (type(video_id) is str and 0 < len(video_id) <= MAX_ID_LENGTH and video_id not in (".", "..")
            and _NOT_IN_ID.search(video_id) is None):
        return None  # the common case in one regex: index.json of Kinetics holds 240,000 ids
    if not isinstance(video_id, str):
        return f"video_id {shown(video_id)} is not a string"
    if not video_id:
        return "video_id is empty"
    if video_id in (".", "..") or any(c in video_id for c in "/\\"):
        return f"video_id {shown(video_id)} may not be '.' or '..' or contain '/' or '\\' ({ID_RULE})"
    if has_control(video_id):
        return f"video_id {shown(video_id)} contains control characters ({ID_RULE})"
    if len(video_id) > MAX_ID_LENGTH:
        return f"video_id {shown(video_id)} is longer than {MAX_ID_LENGTH} characters"
    return None


def check_label_name(name: object) -> str | None:
    """Why a class name cannot be shown in logs and reports, or None."""
    if not isinstance(name, str):
        return f"label_name {shown(name)} is not a string"
    if has_control(name):
        return f"label_name {shown(name)} contains control characters"
    if len(name) > MAX_LABEL_NAME_LENGTH:
        return f"label_name {shown(name)} is longer than {MAX_LABEL_NAME_LENGTH} characters"
    return None


def check_shard_name(name: object) -> str | None:
    """Why `name` cannot name a shard file of a folder (as its own index.json names it), or None."""
    if not isinstance(name, str) or not name:
        return f"shard name {shown(name)} is not a file name ({SHARD_NAME_RULE})"
    if (name in (".", "..") or any(c in name for c in "/\\") or os.path.isabs(name) or has_control(name)
            or len(name) > 255):
        return f"shard name {shown(name)} is not a plain file name ({SHARD_NAME_RULE})"
    return None


# A complete shard's file name in a folder (the store numbers them: flowprep.format.folder)
SHARD_NAME = re.compile(r"^shard-(\d{5,})\.h5$")
