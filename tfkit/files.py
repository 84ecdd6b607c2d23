"""The one way a run writes a file: whole or not at all, readable like any file the user writes.

Every file of a run folder, search folder or export (JSON, CSV, PNG, `.keras`, backups,
SavedModel folders) is written under a unique temporary name in its own folder,
flushed to disk, then renamed onto its name. Readers, TF Serving and a resumed run see
the old file or the new one, never half of one, even after a kill or a power cut.

New files take the mode the user's umask gives (0644 under umask 022), as a plain
`open()` would: `tempfile.mkstemp` and `mkdtemp` make them 0600/0700, which a
TensorBoard or a teammate running as another user cannot read.
"""

import atexit
import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import socket
import typing

from tfkit.errors import UsageError, WriteFailed

TEMPORARY = ".tmp-"  # the prefix of a file being written; run-folder checks skip these
LOCK_FILE = ".lock"
# Writes that fail for a reason the user fixes, not tfkit: `WriteFailed`'s one line.
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def unwritable(error):
    """`(reason, full disk?)` when `error` is a write refused for want of space or permission
    (an `OSError`, or a TensorFlow or h5py error that only says so in words), else None."""
    for number in (*FULL_DISK, *NOT_WRITABLE):
        if getattr(error, "errno", None) == number or os.strerror(number) in str(error):
            return os.strerror(number), number in FULL_DISK
    return None


def write_failure(error):
    """`WriteFailed` for `error`: itself, or one for an error `unwritable` recognises
    (naming the file it carries); else None. The command line's last resort for a write
    outside `writing`: a permission refused there may have been a read's, and says so."""
    if isinstance(error, WriteFailed):
        return error
    refused = unwritable(error)
    if refused is None:
        return None
    reason, full_disk = refused
    reading_too = reason in (os.strerror(errno.EACCES), os.strerror(errno.EPERM))
    return WriteFailed(getattr(error, "filename", None), reason, full_disk, reading_too)


@contextlib.contextmanager
def writing(path):
    """Turns a write refused for want of space or permission in the block into `WriteFailed`
    naming `path` (what was being written); other errors pass unchanged."""
    try:
        yield
    except WriteFailed:
        raise
    except Exception as error:
        refused = unwritable(error)
        if refused is None:
            raise
        raise WriteFailed(path, *refused) from error


@contextlib.contextmanager
def atomic_path(path):
    """Yields a new, empty temporary file beside `path`, renamed onto `path` if the block succeeds.

    The temporary name ends with `path`'s own name, so writers that go by the
    extension (`model.save(".keras")`, `np.savez`) accept it. On an error the
    temporary file is removed and `path` is untouched.

    Example:

    ```python
    with atomic_path("run/best.keras") as temporary:
        model.save(temporary)
    ```
    """
    folder = os.path.dirname(os.path.abspath(path))
    with writing(path):
        os.makedirs(folder, exist_ok=True)
        temporary = _claim_temporary(folder, os.path.basename(path), _create_file)
    try:
        with writing(path):
            yield temporary
            _sync(temporary)
            os.replace(temporary, path)
            _sync(folder)  # the rename itself
    except BaseException:
        _remove(temporary)
        raise


@contextlib.contextmanager
def temporary_folder(parent, name):
    """Yields a new empty folder in `parent` (umask's mode) for a tree that is renamed into place.

    The caller renames it (`publish_folder`); if it is still there when the block ends,
    on success or error, it is removed. A write refused for want of space or permission
    in the block is `WriteFailed`, naming `parent`.
    """
    with writing(parent):
        os.makedirs(parent, exist_ok=True)
        folder = _claim_temporary(parent, name, lambda path: os.mkdir(path, 0o777))
    try:
        with writing(parent):
            yield folder
    finally:
        _remove(folder)


def publish_folder(temporary, path):
    """Flushes every file under `temporary` to disk and renames it to `path`.

    Raises:
        FileExistsError: `path` exists (a folder is never replaced).
    """
    for root, _, names in os.walk(temporary):
        for name in names:
            _sync(os.path.join(root, name))
        _sync(root)
    if os.path.lexists(path):  # os.rename would replace an empty folder silently
        raise FileExistsError(f"{path} exists")
    os.rename(temporary, path)
    _sync(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def locked(folder):
    """Holds an exclusive `flock` on `folder` itself for the block (waits for it; no lock file)."""
    os.makedirs(folder, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing drops the lock


def remove_temporaries(folder):
    """Removes what a killed writer left in `folder` (call it only while holding the folder)."""
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if name.startswith(TEMPORARY):
            _remove(os.path.join(folder, name))


def write_text(path, text):
    """Writes `text` (UTF-8) to `path`, atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as file:
        file.write(text)


def write_json(path, data):
    """Writes `data` as indented JSON, atomically; NumPy numbers as Python numbers."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=plain) + "\n")


def plain(value):
    """NumPy and TensorFlow numbers as Python numbers in JSON; anything else as text."""
    return value.item() if hasattr(value, "item") else str(value)


def _claim_temporary(folder, name, create):
    while True:
        path = os.path.join(folder, f"{TEMPORARY}{secrets.token_hex(4)}-{name}")
        try:
            create(path)
            return path
        except FileExistsError:
            continue


def _create_file(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies


def _sync(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class FolderLock:
    """An exclusive `flock` on `<folder>/.lock`, which holds the owner's process id.

    The kernel drops the lock when its process dies, however it dies, so a lock file
    left by a killed run is stale and simply taken over.
    """

    _held: typing.ClassVar[dict] = {}  # path -> lock, so a run that failed in this process never blocks the next

    def __init__(self, folder, name=LOCK_FILE):
        self.path = os.path.join(folder, name)
        self.fd = None

    def acquire(self):
        """Takes the lock; raises `UsageError` naming the process that holds it."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        previous = FolderLock._held.pop(os.path.abspath(self.path), None)
        if previous:
            previous.release()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 200).decode(errors="replace").split("\n")[0] or "?"
                os.close(fd)
                raise UsageError(
                    f"{os.path.dirname(self.path)} is in use by process {owner}; wait for it "
                    "to end (or stop it), or use another --run-dir"
                ) from None
            try:  # the owner may have removed the file between our open and flock
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{socket.gethostname()}\n".encode())
        self.fd = fd
        FolderLock._held[os.path.abspath(self.path)] = self
        atexit.register(self.release)
        return self

    def release(self):
        if self.fd is None:
            return
        FolderLock._held.pop(os.path.abspath(self.path), None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)  # closing drops the flock
        self.fd = None
