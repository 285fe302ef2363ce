"""Writes into DST that are not uploads: directories made (after files in their
way are removed) and deletions (with what may stop them: a failed file,
``--max-delete``) -- pipelined batches, each outcome told to the recorder.
"""

from __future__ import annotations

from . import remote
from .planner import Plan
from .pool import Pool
from .recorder import Recorder
from .replies import Reply
from .scheduler import run_batch
from .session import Session


async def make_dirs(
    pool: Pool, rec: Recorder, session: Session, paths: list[str], clear: list[str]
) -> Session:
    """Create directories (absolute ``paths``, parents first), after removing
    the files in ``clear`` that stand where they go."""

    def on_reply(key: tuple[str, str], reply: Reply) -> None:
        verb, path = key
        if not reply.is_complete:
            # Usually "exists" (DST's own parents); a real problem shows up
            # as the failure of the uploads into it, with the server's words.
            return
        if verb == "DELE":
            rec.deleted(path)
        else:
            rec.made_dir(path)

    commands = [(f"DELE {p}", ("DELE", p)) for p in clear]
    commands += [(f"MKD {p}", ("MKD", p)) for p in paths]
    return await run_batch(pool, session, commands, on_reply=on_reply)


async def delete(
    pool: Pool, rec: Recorder, session: Session, base: str, plan: Plan, *, max_delete: int | None
) -> Session:
    """The plan's deletions under ``base``: files, then directories children first.

    None at all when some file failed (what replaces them may be missing), or
    when there are more than ``max_delete`` (``--max-delete``: a failure).
    """
    count = len(plan.delete_files) + len(plan.delete_dirs)
    if not count:
        return session
    if rec.report.failed:
        rec.note("not deleting anything on the server because some files failed")
        return session
    if max_delete is not None and count > max_delete:
        msg = f"{count} deletions planned, more than --max-delete {max_delete}; deleted nothing"
        rec.failed(base, msg)
        return session

    def on_reply(path: str, reply: Reply) -> None:
        if reply.is_complete:
            rec.deleted(path)
        else:  # permanent, or transient with the retries used up
            rec.failed(path, f"delete failed: {reply.code} {reply.text}")

    commands = [(f"DELE {remote.remote_join(base, f)}", f) for f in plan.delete_files]
    commands += [(f"RMD {remote.remote_join(base, d)}", d) for d in plan.delete_dirs]
    return await run_batch(pool, session, commands, on_reply=on_reply)


def dst_chain(base: str) -> list[str]:
    """``/a/b/c`` -> ``/a``, ``/a/b``, ``/a/b/c``: DST and any missing parents."""
    parts = [p for p in base.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
