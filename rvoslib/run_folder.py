"""The run folder: ``log.jsonl``, ``config.json``, the checkpoint names, resume checks, the lock.

Files of a run folder ``out_dir``: ``last.pt`` (every ``ckpt_every`` steps and at the end),
``best.pt`` (best validation J&F), ``log.jsonl`` (:class:`RunLog`), ``config.json`` and,
while a run writes it, ``.lock`` (:func:`run_folder_lock`).

One process writes a run folder at a time: training holds ``.lock`` (an advisory
``flock`` on it, plus the owner's pid and host inside for the message and for systems
without ``flock``). A second ``rvoslib train`` into the same folder is refused with
:class:`RunFolderLockedError`; a lock left by a dead process is taken over with a warning.
Temporary files a killed writer left behind (``.last.*.tmp.pt`` ...) are removed once the
lock is held (:func:`remove_stale_temporaries`), and a torn last line of ``log.jsonl`` (a
crash mid-write) is dropped with a warning on resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Iterator, Optional, Union

try:  # POSIX advisory locks; elsewhere the pid in the lock file decides
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from rvoslib.config import Config

logger = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"
LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
LOCK_NAME = ".lock"
# config keys that may change on resume without breaking exactness
RESUME_SILENT_KEYS = ("train.out_dir", "train.eval_every", "train.ckpt_every", "train.log_every",
                      "train.eval_max_videos", "train.init_from", "data.num_workers", "model.backbone.cache_dir")


class RunLog:
    """``log.jsonl``: one JSON object per line, written by rank 0.

    Three kinds of record, all with ``step`` (steps done), ``time`` (wall seconds since the
    run began, summed over resumed sessions) and ``cpu_s`` (this process's CPU seconds):

    - training: ``loss`` (this step's total), ``loss_avg`` (mean total since the previous
      line), ``lr`` (``{"base": ..., "prompt_head": ...}`` used by this step), ``terms``
      (every loss term, mean over ranks, and ``grad_norm`` before clipping);
    - validation: ``val`` (``J&F``, ``J``, ``F``, ``J&F/<kind>``, ``num_objects``), ``eval_s``;
    - failure: ``error`` (the message of :class:`NonFiniteLossError`).
    """

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def write(self, record: dict) -> None:
        """Append one record and flush."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")

    def cut_after(self, step: int) -> None:
        """Drop records of steps after ``step`` (steps an interrupted run did after its last checkpoint)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [json.dumps(r) for r in parse_log(self.path) if r.get("step", 0) <= step]
        from rvoslib.io import atomic_path

        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def read_log(path: Union[str, Path]) -> list[dict]:
    """The records of a run's ``log.jsonl`` (a run folder or the file itself).

    A torn last line (what a crash in the middle of a write leaves) is skipped with a
    warning; any other line that is not JSON raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    return parse_log(path / LOG_NAME if path.is_dir() else path)


def parse_log(path: Path) -> list[dict]:
    """Parse ``log.jsonl`` line by line (see :func:`read_log`)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):  # no newline after it: the write was cut short
                logger.warning("%s: dropping a torn last line %d (%r...), left by an interrupted write",
                               path, number, line[:40])
                break
            raise ValueError(f"{str(path)!r} line {number} is not JSON ({err.msg}); "
                             "the run log is damaged") from None
        if not isinstance(record, dict):
            raise ValueError(f"{str(path)!r} line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def write_config_json(cfg: Config, out_dir: Path) -> Path:
    """``out_dir/config.json`` (atomic)."""
    from rvoslib.io import atomic_path

    path = out_dir / CONFIG_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(cfg.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def config_differences(old: Config, new: Config) -> list[str]:
    """``"key: old -> new"`` for every config field that differs."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_resume_config(saved: Config, cfg: Config, path: Path) -> None:
    """Model changes are an error; other changes (except logging/paths) a warning."""
    diffs = [d for d in config_differences(saved, cfg) if d.split(":")[0] not in RESUME_SILENT_KEYS]
    model_diffs = [d for d in diffs if d.startswith("model.") and not d.startswith("model.backbone.pretrained")]
    if model_diffs:
        raise ValueError(f"cannot resume from {str(path)!r}: the model config differs from the checkpoint's: "
                         f"{'; '.join(model_diffs[:6])}")
    if diffs:
        logger.warning("resuming from %s with a changed config (the run will not repeat an uninterrupted one "
                       "exactly): %s", path, "; ".join(diffs))


def resume_path_of(resume: Union[bool, str, Path, None], out_dir: Path) -> Optional[Path]:
    if resume is None or resume is False:
        return None
    path = out_dir / LAST_NAME if resume is True else Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {str(path)!r}")
    return path


# ---------------------------------------------------------------------------- one writer at a time


class RunFolderLockedError(RuntimeError):
    """Another live process is writing the run folder."""


def _read_owner(path: Path) -> dict:
    """``{"pid", "host"}`` written in a lock file ({} when unreadable or empty)."""
    try:
        owner = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists on this machine."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _refuse(path: Path, owner: dict) -> RunFolderLockedError:
    who = f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"
    return RunFolderLockedError(
        f"run folder {str(path.parent)!r} is being written by {who} (lock file {str(path)!r}); "
        "wait for it to finish, or choose another --out. If no such process runs, delete the lock file.")


@contextlib.contextmanager
def run_folder_lock(out_dir: Union[str, Path], enabled: bool = True) -> Iterator[Optional[Path]]:
    """Hold ``out_dir/.lock`` for the body; refuse with :class:`RunFolderLockedError` when taken.

    The lock is an advisory ``flock`` on the file (released by the kernel when the holder
    dies, however it dies), and the file names the holder (pid, host). A lock file whose
    holder is gone is stale: it is taken over with a warning. Without ``flock`` (Windows),
    a lock file naming a live pid of this host refuses. On exit the file is removed.

    Args:
        out_dir: the run folder (created).
        enabled: False yields None and locks nothing (the non-main ranks of a DDP run).

    Yields:
        the lock file's path.
    """
    if not enabled:
        yield None
        return
    path = Path(out_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # before the flock goes: no other process holds it meanwhile
        os.close(fd)  # closing releases the flock


def _acquire(fd: int, path: Path) -> None:
    """Take the lock on the open lock file ``fd`` or raise; write this process as its owner."""
    previous = _read_owner(path)
    locked = False
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise _refuse(path, _read_owner(path)) from None
        except OSError as err:  # e.g. a network file system without flock: the pid decides
            logger.warning("cannot flock %s (%s); judging the lock by the pid it names", path, err)
    if not locked and previous.get("host") == socket.gethostname() and pid_alive(previous.get("pid")) \
            and previous.get("pid") != os.getpid():
        raise _refuse(path, previous)
    if previous:
        logger.warning("taking over a stale lock on %s (process %s on %s is gone)", path.parent,
                       previous.get("pid", "?"), previous.get("host", "?"))
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
    os.fsync(fd)


# names of the checkpoint, config and log files whose temporary copies ``atomic_path`` makes
_ATOMIC_FILES = (LAST_NAME, BEST_NAME, CONFIG_NAME, LOG_NAME)


def remove_stale_temporaries(out_dir: Union[str, Path]) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left in a run folder (hold the lock).

    ``rvoslib.io.atomic_path`` writes ``<stem>`` through ``.<stem>.<random>.tmp<suffix>``
    next to it; a kill mid-write leaves one behind (a full checkpoint's worth of bytes).

    Returns:
        the removed paths.
    """
    out_dir = Path(out_dir)
    removed = []
    for name in _ATOMIC_FILES:
        stem, suffix = Path(name).stem, Path(name).suffix
        for tmp in out_dir.glob(f".{stem}.*.tmp{suffix}"):
            if tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
    if removed:
        logger.warning("removed %d temporary file(s) left by an interrupted write in %s: %s", len(removed),
                       out_dir, ", ".join(p.name for p in removed))
    return removed
