"""``results.jsonl``, the one file a sweep writes as it goes, and the lock that guards it.

One JSON object per finished job (see :func:`dipseg.eval.jobs.execute_job` for the
fields), appended by the driver with one ``write`` of the whole line, then ``fsync``: a
killed run leaves at most a truncated *last* line, which :class:`ResultsFile` drops (and
rewrites the file without it) on the next read.

**Resume.** A row's key is (dataset, image, method, preset, config id, sampler, budget,
seed), where the config id is a hash of the method's full configuration (so a changed
``iterations`` is a new job, not a hit). A rerun skips every job whose key is already in
the file; the file refuses to write a key twice, so no row is ever duplicated whatever
the executor does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .jobs import row_key


class ResultsFile:
    """``results.jsonl``: append one row atomically, read back tolerating a truncated last line.

    Parameters
    ----------
    path : path-like
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.keys: set[tuple] = set()
        self.dropped = 0
        self._fd: int | None = None

    def load(self) -> list[dict]:
        """All complete, distinct rows (slim: see :func:`slim_row`); repairs the file if needed.

        A line that is not complete JSON (a kill during a write, a full disk) is dropped,
        as is a second row with a key already seen; the file is then rewritten with the
        good lines only (byte for byte, atomically: temp file + rename).
        """
        self.keys = set()
        self.dropped = 0
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        rows: list[dict] = []
        good: list[bytes] = []
        lines = data.split(b"\n")
        # Every complete row ends with "\n": a last piece without one was cut off.
        complete, tail = lines[:-1], lines[-1]
        bad = 1 if tail.strip() else 0
        for line in complete:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = row_key(row)
                slim = slim_row(row)
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            if key in self.keys:
                bad += 1
                continue
            self.keys.add(key)
            rows.append(slim)
            good.append(line + b"\n")
        if bad:
            self.dropped = bad
            self._rewrite(good)
        return rows

    def _rewrite(self, lines: list[bytes]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, row: dict) -> bool:
        """Append ``row`` unless its key is present; one write, flush, fsync. Returns whether written."""
        key = row_key(row)
        if key in self.keys:
            return False
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        data = _dump(row)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.keys.add(key)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def slim_row(row: dict) -> dict:
    """The part of a row the summaries need, with the confusion matrix as an int64 array.

    Keeps memory small for a full sweep (tens of thousands of rows): the configuration
    and fit details stay in the file only.
    """
    slim = {k: v for k, v in row.items() if k not in ("config", "info")}
    slim["confusion"] = np.asarray(row["confusion"], dtype=np.int64)
    return slim


def _dump(row: dict) -> bytes:
    return (json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


class RunLock:
    """An exclusive lock on ``OUT/.bench.lock`` so two runs never write the same results file."""

    def __init__(self, out: Path):
        self.path = out / ".bench.lock"
        self.f = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.f = open(self.path, "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            self.f = None
            raise ValueError(f"another dipseg bench is running with --out {self.path.parent}; wait for it or use another folder") from None
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()
        return False
