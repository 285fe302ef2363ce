"""What happened in a run, told once: each outcome updates the :class:`Report`
and tells the :class:`Events` observer in the same call.
"""

from __future__ import annotations

from collections.abc import Sequence

from .planner import Plan, Upload
from .report import Events, Failure, Report, Verification

#: How many paths one note names.
NOTICES_SHOWN = 10


def named(items: Sequence[str], sep: str = "; ") -> str:
    """The first :data:`NOTICES_SHOWN` of ``items``, then how many more: one note
    stays one line however many paths it is about."""
    shown = sep.join(items[:NOTICES_SHOWN])
    more = len(items) - NOTICES_SHOWN
    return f"{shown}{sep}and {more} more" if more > 0 else shown


class Recorder:
    """The one writer of a run's :class:`Report` and caller of its :class:`Events`."""

    def __init__(self, events: Events | None, *, dry_run: bool) -> None:
        self.events = events or Events()
        self.report = Report(dry_run=dry_run)

    def note(self, message: str) -> None:
        self.report.notes.append(message)
        self.events.note(message)

    def failed(self, path: str, why: str) -> None:
        self.report.failed.append(Failure(path, why))
        self.events.failed(path, why)

    def planned(self, plan: Plan) -> None:
        """The plan is final (the state file may have moved uploads to skipped)."""
        self.report.plan = plan
        self.report.skipped = len(plan.skipped)
        for c in plan.conflicts:
            self.failed(c.path, c.why)
        self.events.planned(plan)

    def compared(self, verification: Verification) -> None:
        """``--verify`` is done: each difference, then one line for all."""
        self.report.verification = verification
        for path in verification.differ:
            self.events.differs(path, verification.method)
        self.note(verification.line())

    def made_dir(self, path: str) -> None:
        self.report.mkdirs += 1
        self.events.action("mkdir", path)

    def linked(self, path: str, target: str) -> None:
        """A symbolic link made on the server (``--site-symlink``)."""
        self.events.action("link", path, target)

    def deleted(self, path: str) -> None:
        self.report.deleted += 1
        self.events.action("delete", path)

    def verified(self, nbytes: int) -> None:
        """An upload's bytes are on the server, checked by SIZE."""
        self.report.bytes_sent += nbytes

    def uploaded(self, upload: Upload) -> None:
        self.report.uploaded += 1
        self.events.uploaded(upload, upload.size)

    def retrying(self, path: str, why: str, attempt: int) -> None:
        self.report.retries += 1
        self.events.retrying(path, why, attempt)

    def scan_stopped(self, kept: int) -> None:
        self.events.scan_stopped(kept)

    def dry_run(self, plan: Plan, mkdirs: list[str]) -> None:
        """What a real run would do, said as actions; counted as if done."""
        for d in mkdirs:
            self.events.action("mkdir", d)
        for u in plan.uploads:
            self.events.action("upload", u.path, u.reason.value)
        for lk in plan.links:
            self.events.action("link", lk.path, lk.target)
        for f in plan.clear_first + plan.delete_files:
            self.events.action("delete", f)
        for d in plan.delete_dirs:
            self.events.action("rmdir", d)
        self.report.uploaded = len(plan.uploads)
        self.report.bytes_sent = plan.upload_bytes
        self.report.mkdirs = len(mkdirs)
        self.report.deleted = len(plan.clear_first) + len(plan.delete_files) + len(plan.delete_dirs)

    def finished(self, duration: float) -> Report:
        self.report.duration = duration
        self.events.close()
        return self.report
