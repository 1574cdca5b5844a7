"""Errors the CLI turns into exit codes: BadInput -> 2, LabError -> 1, Terminated -> 128+N."""

from __future__ import annotations

import signal


class TestbedError(Exception):
    """Base class of every error the tool reports without a traceback."""

    exit_code = 1


class LabError(TestbedError):
    """Something went wrong while running a lab (exit code 1)."""

    exit_code = 1


class BadInput(TestbedError):
    """The user gave us something wrong: a template, a flag, a host name (exit code 2).

    file/line/logical_id locate the problem; str() gives "file:line: LogicalId: message".
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        logical_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.logical_id = logical_id
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        who = f"{self.logical_id}: " if self.logical_id else ""
        text = f"{where}{who}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def located(self, *, file: str | None = None, line: int | None = None) -> BadInput:
        """Return a copy with file/line filled in where they were unknown."""
        return BadInput(
            self.message,
            file=self.file or file,
            line=self.line if self.line is not None else line,
            logical_id=self.logical_id,
            hint=self.hint,
        )


class TemplateErrors(BadInput):
    """Several template problems found at once; each is a BadInput."""

    def __init__(self, errors: list[BadInput]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(
            first.message, file=first.file, line=first.line, logical_id=first.logical_id
        )

    def format(self) -> str:
        return "\n".join(e.format() for e in self.errors)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C raises KeyboardInterrupt, so that
    the process ends through Python's normal unwinding: `finally` blocks (a lab's teardown)
    run and the user sees them (testbed.lab.owner.unwind_on_termination installs it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by signal N."""
        return 128 + self.signum
