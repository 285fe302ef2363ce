"""Showing a run to a person: tqdm bars on a TTY, lftp-style lines with ``-v``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from .planner import Plan, Upload
from .report import Events

if TYPE_CHECKING:
    from tqdm import tqdm


class ConsoleEvents(Events):
    """Progress on ``stream`` (stderr).  ``verbose`` 1 prints each action like
    ``lftp mirror --verbose``; 2 adds retries; bars only when ``bars``."""

    def __init__(
        self, *, stream: TextIO | None = None, verbose: int = 0, bars: bool = True
    ) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.bars = bars
        self._bar: tqdm | None = None

    def _print(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def note(self, message: str) -> None:
        self._print(f"asyncmirror: {message}")

    def planned(self, plan: Plan) -> None:
        if self.bars and plan.uploads:
            # Imported only for a person at a terminal: scripts and CI logs (no
            # bars) do not pay its start-up time.
            from tqdm import tqdm

            self._bar = tqdm(
                total=plan.upload_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                desc=f"0/{len(plan.uploads)} files",
                file=self.stream,
                dynamic_ncols=True,
                leave=True,
            )
            self._files_total = len(plan.uploads)
            self._files_done = 0

    def action(self, verb: str, path: str, detail: str = "") -> None:
        if self.verbose:
            words = {
                "mkdir": "Making directory",
                "upload": "Would transfer file",
                "delete": "Removing old file",
                "rmdir": "Removing old directory",
            }
            if verb == "link":  # lftp's words for the same
                self._print(f"Making symbolic link `{path}' to `{detail}'")
                return
            extra = f" ({detail})" if detail else ""
            self._print(f"{words.get(verb, verb)} `{path}'{extra}")

    def uploaded(self, upload: Upload, nbytes: int) -> None:
        if self.verbose:
            self._print(f"Transferring file `{upload.path}' ({upload.reason.value})")
        if self._bar is not None:
            self._files_done += 1
            self._bar.set_description_str(
                f"{self._files_done}/{self._files_total} files", refresh=False
            )
            self._bar.update(nbytes)

    def differs(self, path: str, method: str) -> None:
        self._print(f"asyncmirror: differs: {path} (content, by {method})")

    def failed(self, path: str, error: str) -> None:
        self._print(f"asyncmirror: failed: {path}: {error}")

    def retrying(self, path: str, error: str, attempt: int) -> None:
        if self.verbose >= 2:
            self._print(f"asyncmirror: retry {attempt} for {path}: {error}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
