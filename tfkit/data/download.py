"""Preparing a TFDS dataset without hanging for minutes when there is no network."""

import logging
import socket
import threading
import urllib.parse

from tfkit.errors import DataError

# TFDS retries a failing download for over three minutes; if the first seconds have not
# finished the job, a quick connection test tells "slow download" from "no network".
_GRACE_SECONDS = 2.0
_PROBE_SECONDS = 10.0


def download_and_prepare(builder, url, ways_out):
    """Runs `builder.download_and_prepare()`, failing fast with a `DataError` when offline.

    Args:
        builder: a `tfds.core.DatasetBuilder`.
        url: where TFDS downloads the dataset from; its host is probed.
        ways_out: the sentence that tells the user what to do instead.

    Raises:
        DataError: the host cannot be reached, or TFDS failed to prepare the data.
    """
    where = builder.data_dir  # TFDS points data_dir at an "incomplete" folder once it starts
    # tfkit's one line replaces the retry warnings urllib3 prints while the network is down.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    finished = threading.Event()
    failures = []

    def prepare():
        try:
            builder.download_and_prepare()
        except Exception as error:  # reported below, in the caller's thread
            failures.append(error)
        finally:
            finished.set()

    threading.Thread(target=prepare, daemon=True).start()
    host = urllib.parse.urlparse(url).hostname
    if not finished.wait(_GRACE_SECONDS) and not reachable(host):
        raise DataError(
            f"cannot download {builder.name}: {host} is unreachable (no network?) and "
            f"there is no prepared copy in {where}. {ways_out}"
        )
    finished.wait()
    if failures:
        first_line = str(failures[0]).strip().splitlines()[0] if str(failures[0]).strip() else ""
        raise DataError(
            f"TFDS could not prepare {builder.name} in {where} "
            f"({type(failures[0]).__name__}: {first_line}). {ways_out}"
        )


def reachable(host, port=443, timeout=_PROBE_SECONDS):
    """Whether a TCP connection to `host` opens within `timeout` seconds (DNS included)."""
    opened = threading.Event()

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            opened.set()
        except OSError:
            pass

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return opened.is_set()
