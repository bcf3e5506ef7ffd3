"""The per-video jobs on a Dask cluster, through joblib's Dask backend.

The same jobs as in local worker processes (video_job.extract_video), submitted to the workers
of a `dask.distributed` scheduler: each writes its video's staging file into the output folder,
which must be on a file system the workers share, and returns only its small outcome; the main
process packs shards as it does locally. joblib maintains this backend itself and passes
`retries` straight to `Client.submit`; a worker killed mid-video has its task run again on
another worker (its half-written `.part` staging file is rewritten from the start), so no video
is lost and none is packed twice.

Whoever reaches a scheduler's port can run code on its workers: `tls://` addresses use
distributed's TLS (`--tls-ca-file`, `--tls-cert`, `--tls-key`, or distributed's own
configuration), and a plain `tcp://` scheduler belongs on a private network (docs/cluster.md).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

from joblib import Parallel, parallel_config

log = logging.getLogger("flowprep")

RETRIES = 3  # a task whose worker died is resubmitted this many times before its video fails


PLAIN_TCP_WARNING = ("%s is a plain tcp:// scheduler: the traffic to it is not encrypted and not authenticated, "
                     "and whoever reaches its port can run code on its workers; keep it on a private network, or "
                     "use tls:// (docs/cluster.md)")


class ClusterError(Exception):
    """A Dask scheduler that cannot be used; str() is the one-line message."""


def security(scheduler: str, ca_file: Path | None, cert: Path | None, key: Path | None):
    """distributed's Security for a tls:// scheduler: the files given, or distributed's
    configuration (dask config `distributed.comm.tls`) when none is; None for tcp://."""
    if not scheduler.startswith("tls://"):
        return None
    from distributed.security import Security

    if ca_file is None:  # ExtractRun checked: all three or none
        return Security()
    return Security(tls_ca_file=str(ca_file), tls_client_cert=str(cert), tls_client_key=str(key),
                    require_encryption=True)


def on_cluster(jobs: list, scheduler: str, note: Callable[[str], None], tls=None, retries: int = RETRIES) -> Iterator:
    """The outcomes of joblib `jobs` run by the scheduler's workers, each as it finishes (connecting
    at the first one asked for); `note` prints a line above the progress bar."""
    from distributed import Client

    if scheduler.startswith("tcp://"):  # said at every run, not only in the docs
        log.warning(PLAIN_TCP_WARNING, scheduler)

    try:
        client = Client(scheduler, security=tls, timeout="30s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler {scheduler}: {' '.join(str(exc).split())}") from None
    try:
        workers = client.scheduler_info()["workers"]
        note(f"Dask scheduler {scheduler}: {len(workers)} worker(s), "
             f"{sum(w.get('nthreads', 1) for w in workers.values())} thread(s)")
        with parallel_config(backend="dask", client=client, retries=retries):
            yield from Parallel(n_jobs=-1, batch_size=1, return_as="generator_unordered")(jobs)  # as process_outcomes
    finally:
        client.close()

