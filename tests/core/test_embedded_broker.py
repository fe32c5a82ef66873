"""The embedded mode's filesystem broker under a polling worker: kombu wrote a message's file under its final name
before its content, a worker polling in between read it empty, and the JSONDecodeError ended the worker, and with
it all of `make run`. Real processes: a Celery worker started as the Procfile starts it, on SQLite and the
filesystem broker of a fresh checkout."""

import builtins
import subprocess
import sys
import uuid

import pytest
from kombu import Connection

from tests.helpers import REPO_ROOT, VENV_BIN, embedded_env, log_in_report, manage, stop_group, wait_for

TRANSPORT = "apps.core.broker:Transport"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX process groups")


def test_a_message_file_is_never_seen_before_it_is_whole(tmp_path, monkeypatch):
    """Every file a queue would read carries its whole message the moment it has that name."""
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    seen_before_written = []

    class WatchedFile:  # lists what a polling worker would find at the moment the content is written
        def __init__(self, file):
            self.file = file

        def write(self, data):
            seen_before_written.extend(p.name for p in folder.iterdir() if p.name.endswith(".work.msg"))
            return self.file.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.file.close()

        def __getattr__(self, name):
            return getattr(self.file, name)

    real_open = builtins.open
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as connection:
        channel = connection.default_channel
        monkeypatch.setattr(builtins, "open", lambda *args, **kwargs: WatchedFile(real_open(*args, **kwargs)))
        channel._put("work", {"body": "x" * 100_000})
        monkeypatch.setattr(builtins, "open", real_open)
        assert not seen_before_written  # kombu's own: the file had its final name, empty, while written
        assert channel._get("work") == {"body": "x" * 100_000}


def test_a_message_the_full_disk_cut_short_leaves_no_file_behind(tmp_path, monkeypatch):
    """A write that fails (the disk full) is refused as a ChannelError, and its partial file goes with it: each
    enqueue while the disk was full left one in the queue folder, never read and never deleted, which every poll
    (4 a second) then listed and sorted for as long as the folder lived."""
    from errno import ENOSPC

    from kombu.exceptions import ChannelError

    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}

    class FullDisk:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            self.file.write(data[:10])
            raise OSError(ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.file.close()

    real_open = builtins.open
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as connection:
        channel = connection.default_channel
        monkeypatch.setattr(builtins, "open", lambda *args, **kwargs: FullDisk(real_open(*args, **kwargs)))
        with pytest.raises(ChannelError):
            channel._put("work", {"body": "x" * 1000})
        monkeypatch.setattr(builtins, "open", real_open)
    assert list(folder.iterdir()) == []


def test_an_unreadable_message_is_set_aside_and_the_worker_keeps_working(tmp_path, request):
    env = embedded_env(tmp_path / "var")
    migrated = manage("migrate", "--noinput", "-v0", env=env, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    # What the worker found between kombu's create and write: an empty file under a message's name, first in line.
    queue = tmp_path / "var" / "broker" / "queue"
    (queue / f"0000000001_{uuid.uuid4()}.default.msg").write_bytes(b"")
    log = log_in_report(request, tmp_path / "worker.log", "worker")
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [str(VENV_BIN / "celery"), "-A", "controlplane", "worker", "-Q", "default", "--concurrency", "1",
             "--loglevel", "INFO"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: " ready." in log.read_text() or worker.poll() is not None, 120, "the worker", log)
        pinged = manage("ping_worker", "--timeout", "90", env=env, timeout=150)
        assert pinged.returncode == 0, pinged.stderr + log.read_text()[-3000:]  # was: Unrecoverable error, rc 1
        assert worker.poll() is None, log.read_text()[-3000:]
        assert "Skipped an unreadable message" in log.read_text()
    finally:
        stop_group(worker)
