"""What a run did, and the events it reports while it runs.

:class:`Report` is what :func:`asyncmirror.mirror` returns and what ``--json``
prints.  :class:`Events` is the observer interface the progress display
implements; the library's default observer says nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .planner import Plan, Upload


class Failure(NamedTuple):
    path: str
    error: str  # one line, e.g. the server's reply


class Verification(NamedTuple):
    """What ``--verify`` compared: how, how many, and what it found."""

    method: str  # "HASH SHA-256", "XSHA256", ..., "download"
    compared: int
    differ: tuple[str, ...]  # uploaded (or, with --dry-run, would be)
    unknown: tuple[str, ...]  # no digest and no download: the listing decided

    def line(self) -> str:
        """One line for a person."""
        out = (
            f"--verify: compared {self.compared} files by {self.method}: {len(self.differ)} differ"
        )
        if self.unknown:
            out += f", {len(self.unknown)} could not be compared (the listing decided for them)"
        return out


class Report:
    """The outcome of one mirror run.  ``exit_code``: 0 ok, 1 some files failed.

    It behaves as the dataclass it was (same fields and order, value equality, a
    repr of every field) without its cost at start-up (see :mod:`~asyncmirror.entries`).
    """

    #: The fields, in constructor order.
    __match_args__ = (
        "uploaded",
        "skipped",
        "bytes_sent",
        "mkdirs",
        "deleted",
        "failed",
        "notes",
        "duration",
        "dry_run",
        "plan",
        "retries",
        "verification",
    )
    __slots__ = __match_args__

    def __init__(
        self,
        uploaded: int = 0,
        skipped: int = 0,
        bytes_sent: int = 0,
        mkdirs: int = 0,
        deleted: int = 0,
        failed: list[Failure] | None = None,
        notes: list[str] | None = None,
        duration: float = 0.0,
        dry_run: bool = False,
        plan: Plan | None = None,
        retries: int = 0,
        verification: Verification | None = None,
    ) -> None:
        self.uploaded = uploaded
        self.skipped = skipped
        self.bytes_sent = bytes_sent
        self.mkdirs = mkdirs
        self.deleted = deleted
        self.failed: list[Failure] = [] if failed is None else failed
        self.notes: list[str] = [] if notes is None else notes
        self.duration = duration
        self.dry_run = dry_run
        self.plan = plan
        self.retries = retries
        self.verification = verification

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Report) or other.__class__ is not self.__class__:
            return NotImplemented  # a subclass is not equal, as with a dataclass
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"Report({fields})"

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def files_per_second(self) -> float:
        return self.uploaded / self.duration if self.duration > 0 else 0.0

    def summary(self) -> str:
        verb = "would upload" if self.dry_run else "uploaded"
        rate = f", {self.files_per_second:.1f} files/s" if not self.dry_run else ""
        parts = [
            f"{verb} {self.uploaded} files ({_human(self.bytes_sent)})",
            f"skipped {self.skipped}",
            f"failed {len(self.failed)}",
        ]
        if self.deleted:
            parts.append(f"{'would delete' if self.dry_run else 'deleted'} {self.deleted}")
        return ", ".join(parts) + f" in {self.duration:.1f} s{rate}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "uploaded": self.uploaded,
            "skipped": self.skipped,
            "bytes_sent": self.bytes_sent,
            "mkdirs": self.mkdirs,
            "deleted": self.deleted,
            "retries": self.retries,
            "duration": round(self.duration, 3),
            "failed": [f._asdict() for f in self.failed],
            "notes": list(self.notes),
        }
        if self.verification is not None:
            v = self.verification
            out["verify"] = {
                "method": v.method,
                "compared": v.compared,
                "differ": list(v.differ),
                "unknown": list(v.unknown),
            }
        if self.plan is not None:
            out["plan"] = {
                "mkdirs": self.plan.mkdirs,
                "uploads": [
                    {"path": u.path, "size": u.size, "reason": u.reason.value}
                    for u in self.plan.uploads
                ],
                "delete_files": self.plan.clear_first + self.plan.delete_files,
                "delete_dirs": self.plan.delete_dirs,
                "conflicts": [c._asdict() for c in self.plan.conflicts],
            }
            if self.plan.links:  # --site-symlink
                out["plan"]["links"] = [lk._asdict() for lk in self.plan.links]
        return out


class Events:
    """Observer of a run.  Subclass and override what you need; all no-ops here."""

    def note(self, message: str) -> None:
        """Something the user should know (pool shrank, state missing...)."""

    def planned(self, plan: Plan) -> None:
        """The plan is ready; uploads start next."""

    def action(self, verb: str, path: str, detail: str = "") -> None:
        """One action done or planned: mkdir, upload, delete (lftp --verbose style)."""

    def uploaded(self, upload: Upload, nbytes: int) -> None:
        """One file is on the server and verified."""

    def differs(self, path: str, method: str) -> None:
        """``--verify`` found ``path``'s content on the server different."""

    def failed(self, path: str, error: str) -> None:
        """One file failed for good."""

    def retrying(self, path: str, error: str, attempt: int) -> None:
        """One attempt failed; another follows after a backoff."""

    def scan_stopped(self, kept: int) -> None:
        """Debug: the run ended before the local scan, stopped after ``kept`` entries."""

    def close(self) -> None:
        """The run is over (close progress bars)."""


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{n} B"  # pragma: no cover
