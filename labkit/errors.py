"""labkit's exceptions: one base, each also the stdlib class callers already catch.

Every exception labkit raises on purpose derives from :class:`LabkitError` and from the
standard class that describes it (``TimeoutError``, ``ValueError``, ``LookupError``, ...), so
``except LabkitError`` catches all of labkit's own failures while an existing
``except TimeoutError`` keeps working. Argument errors stay plain ``TypeError`` /
``ValueError`` (raised by :mod:`labkit.checks`): they are the caller's bug, not labkit's state.

A labkit error shown in a notebook renders as its one sentence (IPython's
``_render_traceback_``); ``%tb`` still prints the full traceback.
"""

from __future__ import annotations

import traceback


class LabkitError(Exception):
    """Base of every exception labkit raises about the state of a server or a pattern."""

    _shown_once = False

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the traceback: a learner sees the sentence
        # that says what to do. `%tb` asks IPython to show the same exception again, and it
        # calls this again (it has no other way in): the second time, give the frames.
        if not self._shown_once:
            self._shown_once = True
            return [f"{type(self).__name__}: {self}"]
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return traceback.format_exception(self)
        return list(shell.InteractiveTB.structured_traceback(type(self), self, self.__traceback__))
