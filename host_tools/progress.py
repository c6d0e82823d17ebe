"""Progress of a long job, for the command line and the bench."""

import sys


class Progress:
    """Progress of a long job on stderr: a rich bar on a terminal, a plain
    line every tenth otherwise. `update(done, total, item)`."""

    def __init__(self, label):
        self.label = label
        self._bar = None
        self._task = None
        self._tenth = -1

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress("[bold]" + self.label, BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._bar.__enter__()
        return self

    def update(self, done, total, item=None):
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(self.label, total=total)
            self._bar.update(self._task, completed=done)
        elif total >= 10 and done * 10 // total != self._tenth:
            self._tenth = done * 10 // total
            print("%s: %d/%d" % (self.label, done, total), file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
