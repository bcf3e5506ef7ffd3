"""Extraction across machines: parts of a manifest (SLURM array tasks) into one folder that reads
as one dataset, with mixed or overlapping parts refused; and the same jobs on a Dask cluster
(a LocalCluster of 2 worker processes), equal to the local run, surviving a worker killed mid-run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flowprep.extract.config import ExtractConfig, ExtractRun, part_of
from flowprep.extract.run import ExtractError, run_extract
from flowprep.format.folder import ExtractionFolder, FolderError
from flowprep.format.shards import ShardFormatError, open_shard, video_reader
from flowprep.tools.verify import verify_path
from tests.support.cli import flowprep
from tests.support.reliability import assert_held, dask_worker_kill, scheduler_impostor
from tests.support.videos import make_videos

MOTIONS = {f"m{i}": v for i, v in enumerate([(2, 0), (0, 2), (-2, 0), (0, -2), (1, 1), (-1, 1), (2, -1), (-2, 2)])}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_videos(tmp_path_factory.mktemp("scale") / "videos", MOTIONS, frames=6)


def extract(manifest: Path, out: Path, **options) -> object:
    config = ExtractConfig(flow_method="farneback", width=128, height=96)
    return run_extract(ExtractRun(manifest, manifest.parent, out, config, workers=2, **options), interactive=False)


def contents(folder: Path) -> dict[str, tuple]:
    """Every video's frame count, RGB bytes and flow codes, read through the folder's index."""
    out = {}
    for video_id, entry in ExtractionFolder(folder).read_index().items():
        with open_shard(folder / entry.shard) as f:
            v = video_reader(f, video_id)
            out[video_id] = (v.num_frames, [bytes(v.stored_rgb(i)) for i in range(v.num_frames)],
                             [v.flow_codes(d, i).tobytes() for d in ("forward", "backward") for i in range(v.num_frames - 1)])
    return out


@pytest.fixture(scope="module")
def single(manifest, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "out"
    extract(manifest, out)
    return out


def test_the_part_of_a_video_depends_on_its_id_alone():
    ids = [f"v_{i}" for i in range(1000)]
    parts = [part_of(v, 4) for v in ids]
    assert parts == [part_of(v, 4) for v in reversed(ids)][::-1]  # not on the order
    assert set(np.bincount(parts)) and min(np.bincount(parts)) > 200  # about a quarter each
    assert part_of("v_1", 1) == 0


def test_parts_read_as_the_single_run(manifest, single, tmp_path, capsys):
    out = tmp_path / "parts"
    summaries = [extract(manifest, out, num_parts=2, part=i) for i in range(2)]
    assert sum(s.finished for s in summaries) == len(MOTIONS) and all(not s.failures for s in summaries)
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["part-00000-of-00002", "part-00001-of-00002"]
    assert contents(out) == contents(single)
    assert verify_path(out).ok
    status, stdout, _ = flowprep(capsys, "inspect", out)
    assert status == 0 and f"videos: {len(MOTIONS)}" in stdout and "parts/part-00001-of-00002/shard-00000.h5" in stdout
    # each part resumes on its own
    again = extract(manifest, out, num_parts=2, part=1)
    assert again.finished == 0 and again.skipped == summaries[1].total


def test_parts_that_do_not_make_one_dataset_are_refused(manifest, tmp_path):
    out = tmp_path / "mixed"
    extract(manifest, out, num_parts=2, part=0)
    config = ExtractConfig(flow_method="farneback", width=128, height=96, bound=10.0)
    with pytest.raises(FolderError, match=r"was extracted with a different config \(bound: 20.0 -> 10.0\)"):
        run_extract(ExtractRun(manifest, manifest.parent, out, config, num_parts=2, part=1), interactive=False)
    with pytest.raises(ExtractError, match="holds parts of a split with --num-parts 2, not 3"):
        extract(manifest, out, num_parts=3, part=0)
    with pytest.raises(ExtractError, match="holds parts of an extraction split with --num-parts 2"):
        extract(manifest, out)
    # a part copied twice: its videos are in two places
    shutil.copytree(out / "parts" / "part-00000-of-00002", out / "parts" / "part-00001-of-00002")
    with pytest.raises(ShardFormatError, match=r"video '.*' is in both .*part-00000-of-00002/index.json and .*"
                                               r"part-00001-of-00002/index.json"):
        ExtractionFolder(out).read_index()
    # a part made with another config, found by the readers
    part = out / "parts" / "part-00001-of-00002" / "config.json"
    stored = json.loads(part.read_text())
    stored["extract"]["bound"] = 5.0
    part.write_text(json.dumps(stored))
    report = verify_path(out)
    assert any("was made with another config than" in p.message and "bound: 20.0 -> 5.0" in p.message
               for p in report.problems)
    with pytest.raises(ShardFormatError, match="part-00001-of-00002 was made with another config"):
        ExtractionFolder(out).read_index()


# --- Dask ---------------------------------------------------------------------------------------------
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_a_dask_cluster_extracts_what_the_local_workers_extract(manifest, single, cluster, tmp_path):
    out = tmp_path / "dask"
    summary = extract(manifest, out, scheduler=cluster.scheduler_address)
    assert summary.finished == len(MOTIONS) and not summary.failures
    assert contents(out) == contents(single)  # same index, same decoded frames and flow codes


def test_a_worker_killed_mid_run_loses_no_video(cluster, tmp_path):
    record = dask_worker_kill(tmp_path, cluster.scheduler_address)
    assert record.held, record.detail


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made with openssl (skipped where it is missing)."""
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(folder / "key.pem"),
                    "-out", str(folder / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


def test_a_tls_scheduler_takes_the_certificates_given(manifest, certificate, tmp_path, capsys):
    from distributed.security import Security

    cert, key = (str(p) for p in certificate)
    security = Security(tls_ca_file=cert, tls_scheduler_cert=cert, tls_scheduler_key=key, tls_worker_cert=cert,
                        tls_worker_key=key, tls_client_cert=cert, tls_client_key=key, require_encryption=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  protocol="tls://", security=security) as tls_cluster:
        address = tls_cluster.scheduler_address
        assert address.startswith("tls://")
        args = ["extract", "--manifest", manifest, "--out", tmp_path / "out", "--flow", "farneback", "--size", "128x96",
                "--scheduler", address]
        status, stdout, _ = flowprep(capsys, *args, "--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key)
        assert status == 0 and f"{len(MOTIONS)} extracted now" in stdout
        status, _, err = flowprep(capsys, *args[:-2], "--scheduler", address, "--tls-ca-file", cert)
        assert status == 2 and err.count("\n") == 1 and "needs all three of --tls-ca-file, --tls-cert and --tls-key" in err
    status, _, err = flowprep(capsys, *args[:-2], "--scheduler", "tcp://127.0.0.1:9", "--tls-ca-file", cert)
    assert status == 2 and "go with a tls:// --scheduler" in err


# issue 30: a silent listener or an HTTP server hung extract for over 200 s; garbage gave an
# ArrayMemoryError (3.07 EiB) traceback
# issue 30: a silent listener (an HTTP server is one until it is sent a request) hung extract for over
# 200 s; garbage gave an ArrayMemoryError (3.07 EiB); make bench-reliability runs all the kinds
@pytest.mark.parametrize("kind", ["silent", "garbage"])
def test_a_scheduler_address_that_is_not_dask_is_one_line_naming_it_within_the_timeout(manifest, tmp_path, kind):
    assert_held(scheduler_impostor(manifest, tmp_path, kind))


def test_the_handshake_check_passes_a_real_scheduler(cluster):
    from flowprep.extract.cluster import check_handshake

    check_handshake(cluster.scheduler_address, 5.0)
