"""runkit: what every run of a command needs, for both tools (flowprep and twostream).

The name says what it holds: the run-time conventions the two packages share, so that a
command of either behaves the same way. Files written whole and read only if regular (files),
SIGINT and SIGTERM as one stop (signals), fault points and a full disk (faults), names shown and
paths kept inside a folder (safe_paths), a run folder's lock (lock), the console progress bar
(progress), how a command ends: exit statuses and one-line errors (cli), the options both
commands share (options), and the entry points that load the heavy libraries (launch).

It imports neither flowprep nor twostream (tests/test_layout.py): both build on it.
"""
