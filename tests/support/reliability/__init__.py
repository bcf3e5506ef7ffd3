"""The reliability scenarios: faults injected into real runs, and bad input of every kind, each
checked against what docs/reliability.md promises. tests/test_reliability.py runs a
sample of them; `make bench-reliability` (benchmarks/bench_reliability.py) runs them all and puts
the counts in docs/reliability.md.

Every scenario returns a `Record`: its kind, what was done, whether the promise held, and, where
it failed, why. Nothing here skips a check: a scenario that cannot run on this machine (no
tmpfs) takes the next way (RLIMIT_FSIZE) and says which.
"""
from tests.support.cli import FLOWPREP, PYTHON, TWOSTREAM, run  # noqa: F401
from tests.support.reliability.bad_input import (  # noqa: F401
    BAD_ARGUMENTS,
    BAD_MANIFESTS,
    bad_arguments,
    bad_manifests,
    bad_videos,
    make_bad_videos,
    no_frame_rate_with_fps,
    write_rotated_mp4,
    write_vfr_mp4,
    write_zero_rate_avi,
)
from tests.support.reliability.common import (  # noqa: F401
    SIZE,
    VIDEOS,
    Record,
    Reference,
    assert_held,
    contents,
    extract_command,
    kill_after,
    kill_by_fault,
    one_line,
    reference_run,
    summary,
    verify_ok,
    wait_until,
)
from tests.support.reliability.damage import DAMAGE, damage, damaged_shards  # noqa: F401
from tests.support.reliability.extraction import (  # noqa: F401
    EXTRACTION_POINTS,
    SCHEDULER_IMPOSTORS,
    TIMED_KILLS,
    Impostor,
    SmallDevice,
    dask_worker_kill,
    device_out_of_memory,
    disk_full,
    extraction_kill,
    scheduler_impostor,
)
from tests.support.reliability.signals import (  # noqa: F401
    EARLY_COMMANDS,
    concurrent_training,
    early_commands,
    early_group_sigint,
    early_reference,
    extraction_signal,
    first_new_video_after_resume,
    scale_of_resume,
    signal_reference,
    staging_bound_run,
    stopped_manifest_check,
    torchrun_signal,
    training_signal,
)
from tests.support.reliability.tampered import (  # noqa: F401
    TAMPERED,
    control_character_ids,
    mismatched_checkpoints,
    tampered_folders,
    video_symlinks,
)
from tests.support.reliability.training import (  # noqa: F401
    TRAINING_POINTS,
    torchrun,
    torchrun_rank_kill,
    train_command,
    training_during_extraction,
    training_kill,
    weights,
)
