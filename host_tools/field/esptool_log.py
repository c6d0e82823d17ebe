"""esptool's output on a rich console, while `citynode flash` drives it.

esptool (v5) reports through one logger, the `log` of esp-pylib, which a
program may replace (`EspLog.set_logger`). `showing_esptool(console)` puts
`EsptoolOutput` there for the time of a `with` block: esptool's lines are
printed dimmed and indented under citynode's own, its warnings and notes
stand out, and its chunk-by-chunk progress (`log.progress`, which calls
`progress_bar(done, total, ...)` after each block it writes) drives a rich
progress bar. Debug lines, which esptool shows only with --verbose, are
left out as esptool itself leaves them out.

Kept apart from host_tools.field.flash so the `citynode` command does not import
esptool unless it flashes.
"""

from contextlib import contextmanager

import esptool.logger  # noqa: F401  (installs esptool's own logger first, restored afterwards)
from esp_pylib.logger import EspLog, EspLogBase
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)


class EsptoolOutput(EspLogBase):
    """An esp-pylib logger writing to a rich Console (esptool's text is rich
    markup: it escapes what it quotes)."""

    def __init__(self, console):
        self.console = console
        self._line = ""
        self._bar = None
        self._task = None

    def print(self, *args, sep=" ", end="\n", **_rich_options):
        # esptool prints lines in pieces ("Connecting..." then one "." per try)
        self._line += sep.join(str(a) for a in args) + end
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            if line.strip():
                self.console.print("  " + line, style="dim", highlight=False)

    def _labelled(self, label, style, args):
        self.console.print("  %s: %s" % (label, " ".join(str(a) for a in args)), style=style,
                           highlight=False)

    def note(self, *args):
        self._labelled("Note", "cyan", args)

    def hint(self, *args):
        self._labelled("Hint", "cyan", args)

    def warn(self, *args, suggestion=None):
        self._labelled("Warning", "yellow", args + ((suggestion,) if suggestion else ()))

    def err(self, *args, suggestion=None):
        self._labelled("Error", "red", args + ((suggestion,) if suggestion else ()))

    def debug(self, *args):
        pass

    def set_verbosity(self, mode):
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
        if self._bar is None:
            self._bar = Progress(TextColumn("  {task.description}"), BarColumn(), TaskProgressColumn(),
                                 DownloadColumn(), TimeRemainingColumn(), console=self.console)
            self._bar.start()
            self._task = self._bar.add_task(prefix.strip(), total=total_iters)
        self._bar.update(self._task, completed=cur_iter, total=total_iters, description=prefix.strip())
        if cur_iter >= total_iters:
            self.close()

    def close(self):
        """End a bar left unfinished (esptool failed half-way)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextmanager
def showing_esptool(console):
    """Route esptool's output to `console` inside the block."""
    previous = EspLog.instance
    out = EsptoolOutput(console)
    EspLog.set_logger(out)
    try:
        yield out
    finally:
        out.close()
        EspLog.set_logger(previous)
