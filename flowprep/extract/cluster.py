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
import socket
import ssl
import struct
import time
from pathlib import Path
from typing import Callable, Iterator

from joblib import Parallel, parallel_config

from flowprep.extract.config import SCHEDULER_TIMEOUT_S

log = logging.getLogger("flowprep")

RETRIES = 3  # a task whose worker died is resubmitted this many times before its video fails
# a scheduler's first message (distributed.comm's handshake: its versions and options) is a few
# hundred bytes; a length beyond this is not Dask's protocol (garbage read as one asked distributed
# for 3.07 EiB)
MAX_HANDSHAKE_BYTES = 1 << 20
MAX_HANDSHAKE_FRAMES = 64


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


def check_handshake(scheduler: str, timeout_s: float, tls=None) -> None:
    """Connect to the scheduler and read the first message a Dask scheduler sends to every client,
    within `timeout_s` in all: a ClusterError naming the address unless it is one in Dask's framing
    (a length, a frame count, frame lengths that add up). distributed's Client read from a silent
    listener or an HTTP server (the dashboard's port) for over 200 s, whatever its timeout, and read
    garbage as a message of 3.07 EiB (a traceback); a real scheduler answers in milliseconds. The
    connection is closed before this side writes anything."""
    host, _, port = scheduler.split("://", 1)[1].rpartition(":")
    host = host.strip("[]")  # an IPv6 address
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    try:
        with socket.create_connection((host, int(port)), timeout=left()) as raw:
            stream = raw
            if tls is not None:
                context: ssl.SSLContext = tls.get_connection_args("client")["ssl_context"]
                stream = context.wrap_socket(raw, server_hostname=host if context.check_hostname else None)
            stream.settimeout(left())
            size = struct.unpack("<Q", _read(stream, 8, left))[0]
            if not 16 <= size <= MAX_HANDSHAKE_BYTES:
                raise _NotDask(f"its first 8 bytes give a message of {size:,} bytes")
            message = _read(stream, size, left)
            frames = struct.unpack_from("<Q", message)[0]
            if not 1 <= frames <= MAX_HANDSHAKE_FRAMES or 8 * (1 + frames) > size:
                raise _NotDask(f"a message of {frames:,} frames")
            lengths = struct.unpack_from(f"<{frames}Q", message, 8)
            if sum(lengths) != size - 8 * (1 + frames):
                raise _NotDask("frame lengths that do not add up to the message")
    except TimeoutError:
        raise ClusterError(f"the Dask scheduler {scheduler} did not answer within {timeout_s:g} s: it accepts no "
                           f"connection or says nothing (is it the scheduler's port, 8786 by default, and not the "
                           f"dashboard's, 8787?); raise --scheduler-timeout if it is only slow") from None
    except _NotDask as exc:
        raise ClusterError(f"{scheduler} answered, but not as a Dask scheduler ({exc}); check the address") from None
    except ssl.SSLError as exc:
        raise ClusterError(f"no TLS connection to the Dask scheduler {scheduler}: {exc.reason or exc}") from None
    except OSError as exc:
        raise ClusterError(f"cannot reach the Dask scheduler {scheduler}: {exc.strerror or exc}") from None


class _NotDask(Exception):
    """An answer that is not Dask's framing; str() says what was read."""


def _read(stream: socket.socket, count: int, left: Callable[[], float]) -> bytes:
    """Exactly `count` bytes, within the time `left()` gives; _NotDask if the peer closes first."""
    chunks, got = [], 0
    while got < count:
        stream.settimeout(left())
        chunk = stream.recv(min(count - got, 65536))
        if not chunk:
            raise _NotDask(f"it closed the connection after {got} of {count} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def on_cluster(jobs: list, scheduler: str, note: Callable[[str], None], tls=None, retries: int = RETRIES,
               timeout_s: float = SCHEDULER_TIMEOUT_S) -> Iterator:
    """The outcomes of joblib `jobs` run by the scheduler's workers, each as it finishes (connecting
    at the first one asked for, after check_handshake within `timeout_s`); `note` prints a line
    above the progress bar."""
    from distributed import Client

    if scheduler.startswith("tcp://"):  # said at every run, not only in the docs
        log.warning(PLAIN_TCP_WARNING, scheduler)

    check_handshake(scheduler, timeout_s, tls)
    try:
        client = Client(scheduler, security=tls, timeout=f"{timeout_s}s", set_as_default=False)
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

