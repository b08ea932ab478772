"""Leaderboards on a sorted set, with ties ranked three ways, every query one round trip.

A ``Leaderboard`` keeps each member's score in a sorted set and answers "what is my rank?",
"who is on top?" and "who is around me?" in O(log n) server time and one round trip each.

Ranks are 1-based, highest score first. How ties are ranked is a choice (``rank_method``):

``"ordinal"`` (1234)
    Redis's own order, ``ZREVRANK + 1``. Every member gets a distinct rank. Redis orders a
    sorted set by score ascending and, for equal scores, by the member's bytes ascending
    (``memcmp``: ``"alice" < "bob"``; for UTF-8 text that is code-point order, the same as
    Python's ``str`` ordering). ``ZREVRANK``/``ZREVRANGE`` read that order backwards, so among
    equal scores the member that sorts *last* ranks *first*: ``"bob"`` is above ``"alice"``.
    The rank of a tied player therefore depends on their name, which is rarely what a game
    wants to show.
``"competition"`` (1224)
    ``1 + (number of members with a strictly higher score)``, counted with
    ``ZCOUNT key (score +inf``: tied members share a rank and the next rank is skipped.
``"dense"`` (1223)
    ``1 + (number of distinct scores strictly higher)``. Redis cannot count distinct scores in
    a range, so the board keeps a companion sorted set of its distinct scores (member = the
    score's string, score = the score) and a hash counting how many members hold each score.
    Every write updates all three keys in one Lua script, so they never disagree; the dense
    rank is then ``ZCOUNT distinct (score +inf`` + 1, O(log d) for d distinct scores.
    The cost, stated honestly: every write is a script touching three keys instead of one
    ZADD, and memory grows by one entry per distinct score in two keys (at most one per
    member; notebook 08 measures both). Reads of the other two methods do not touch the
    companion keys.

Keys (all share the hash tag ``{name}``, so scripts work on a cluster)::

    <prefix>{<name>}:scores     ZSET  member -> score
    <prefix>{<name>}:distinct   ZSET  score-string -> score, one entry per distinct score
    <prefix>{<name>}:counts     HASH  score-string -> how many members hold that score

``prefix`` is the literal start of every key and ends with ``:`` (default ``"leaderboard:"``);
in a notebook or test pass ``ns.prefix_for("leaderboard")``.

What it guarantees: every operation is atomic (one command or one Lua script, the scripts in
``labkit/lua/leaderboard/``) and one round trip (scripts run by EVALSHA; the first call on a
fresh server also loads the script); the three keys always agree as long as they are written
only through this class. Bad input raises TypeError/ValueError naming the argument before
anything is sent: a score or increment that is not a finite number in
``[-(2**53 - 1), 2**53 - 1]``, a count ``n`` that is not an int in ``[0, 2**52]``, a ``bool``
where a number is expected, an empty member. Integer scores stay exact: from ``2**53`` on a
double can no longer tell ``x`` from ``x + 1``, so such scores are refused, and an
``increment`` whose sum would reach that far is refused with the board left unchanged.
What it does not: scores are IEEE doubles (0.1 is stored as the nearest double); ``add_many``
is atomic per batch, not across batches; writing the ``scores`` key directly (a bare ZADD)
leaves the dense-rank companion keys stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, cast

from labkit import checks, scripts
from labkit.checks import as_text
from labkit.client import Client, is_cluster

RankMethod = Literal["ordinal", "competition", "dense"]
RANK_METHODS: tuple[str, ...] = ("ordinal", "competition", "dense")


class Entry(NamedTuple):
    """One row of a leaderboard view."""

    rank: int
    member: str
    score: float


# Scores and increments are doubles in Redis and in Lua; from 2**53 on adjacent integers
# collapse (2**53 + 1 == 2**53), so an increment by 1 would silently change nothing.
MAX_SCORE = checks.MAX_EXACT - 1
# A window of n rows reaches position pos + n, a Lua double: keep it an exact integer.
MAX_WINDOW = checks.MAX_EXACT // 2


def _score(arg: str, value: object) -> float:
    """A finite score in [-(2**53 - 1), 2**53 - 1], -0.0 folded into 0.0 (one distinct score)."""
    return checks.number(arg, value, low=-MAX_SCORE, high=MAX_SCORE) + 0.0


class Leaderboard:
    """A ranked board of members and scores: ``Leaderboard(r, "season-1")``.

    ``rank_method`` ("ordinal", "competition" or "dense", see the module docstring) is the
    default for ``get_rank``, ``get_top`` and ``get_around_me``; each also takes ``method=``.
    """

    # The scripts, each in labkit/lua/leaderboard/ with its KEYS, ARGV and reply.
    WRITE_SCRIPT = scripts.load("leaderboard/write")
    ADD_MANY_SCRIPT = scripts.load("leaderboard/add_many")
    REMOVE_SCRIPT = scripts.load("leaderboard/remove")
    RANK_SCRIPT = scripts.load("leaderboard/rank")
    WINDOW_SCRIPT = scripts.load("leaderboard/window")
    PERCENTILE_SCRIPT = scripts.load("leaderboard/percentile")

    def __init__(
        self,
        r: Client,
        name: str,
        *,
        prefix: str = "leaderboard:",
        rank_method: RankMethod = "ordinal",
    ) -> None:
        self.name = checks.tag_safe("name", name)
        self.prefix = checks.prefix(prefix)
        self.rank_method: RankMethod = self._check_method("rank_method", rank_method)
        self.r = r
        self._write = scripts.register(r, self.WRITE_SCRIPT)
        self._add_many = scripts.register(r, self.ADD_MANY_SCRIPT)
        self._remove = scripts.register(r, self.REMOVE_SCRIPT)
        self._rank = scripts.register(r, self.RANK_SCRIPT)
        self._window = scripts.register(r, self.WINDOW_SCRIPT)
        self._percentile = scripts.register(r, self.PERCENTILE_SCRIPT)

    # -- keys ------------------------------------------------------------------------------

    def _key(self, part: str) -> str:
        """The one place key names are built: ``<prefix>{<name>}:<part>``."""
        return f"{self.prefix}{{{self.name}}}:{part}"

    @property
    def keys(self) -> list[str]:
        """The board's keys: scores, distinct scores, score counts (one hash slot)."""
        return [self._key("scores"), self._key("distinct"), self._key("counts")]

    @staticmethod
    def _check_method(arg: str, method: object) -> RankMethod:
        return cast(RankMethod, checks.choice(arg, method, RANK_METHODS))

    def _method(self, method: str | None) -> RankMethod:
        return self.rank_method if method is None else self._check_method("method", method)

    # -- writes ----------------------------------------------------------------------------

    def set_score(self, member: str, score: float) -> None:
        """Set ``member``'s score (adding the member if new)."""
        checks.text("member", member)
        value = _score("score", score)
        self._write(keys=self.keys, args=[member, repr(value), "set"])

    def increment(self, member: str, by: float = 1) -> float:
        """Add ``by`` to ``member``'s score (0 if new); return the new score.

        ``by`` is in ``[-(2**53 - 1), 2**53 - 1]``; a sum beyond that (where a double can no
        longer tell adjacent integers apart) raises ValueError and leaves the board unchanged,
        as ``set_score`` refuses such a score.
        """
        checks.text("member", member)
        delta = _score("by", by)
        new = self._write(keys=self.keys, args=[member, repr(delta), "incr"])
        if new is None:
            raise ValueError(
                f"by={by!r} would take {member!r}'s score beyond +-(2**53 - 1) (= {MAX_SCORE}), "
                "where scores are no longer exact; the board is unchanged"
            )
        return float(new)

    def add_many(self, scores: Mapping[str, float], *, batch: int = 5000) -> int:
        """Set many scores: one script per ``batch`` members (sent in score order), pipelined.

        Each batch is atomic; the whole load is not. Returns how many members were new.
        On a cluster client the batches go one round trip each (cluster pipelines do not
        carry scripts).
        """
        if not isinstance(scores, Mapping):
            raise TypeError(
                f"scores must be a mapping of member -> score, not {type(scores).__name__}"
            )
        checks.integer("batch", batch, low=1)
        checked: list[tuple[float, str]] = []
        for member, score in scores.items():
            checks.text("member", member)
            checked.append((_score(f"score of {member!r}", score), member))
        if not checked:
            return 0
        # Sent in score order: each insert then lands next to the previous one in the skip
        # list, whose path stays in the CPU cache; random order is several times slower on
        # a board of a million members.
        checked.sort(key=lambda pair: pair[0])
        args: list[str] = []
        for score, member in checked:
            args += [member, repr(score)]
        step = 2 * batch
        chunks = [args[i : i + step] for i in range(0, len(args), step)]
        if is_cluster(self.r):  # a cluster pipeline refuses scripts
            return sum(int(self._add_many(keys=self.keys, args=chunk)) for chunk in chunks)
        pipe = self.r.pipeline(transaction=False)
        for chunk in chunks:
            self._add_many(keys=self.keys, args=chunk, client=pipe)
        return sum(int(n) for n in pipe.execute())

    def remove(self, member: str) -> bool:
        """Remove ``member``; True if it was on the board."""
        checks.text("member", member)
        return bool(self._remove(keys=self.keys, args=[member]))

    def clear(self) -> int:
        """Delete the whole board (its three keys); return how many keys existed."""
        return int(self.r.delete(*self.keys))

    # -- reads -----------------------------------------------------------------------------

    def size(self) -> int:
        """How many members are on the board."""
        return int(self.r.zcard(self._key("scores")))

    def get_score(self, member: str) -> float | None:
        """``member``'s score, or None if not on the board."""
        checks.text("member", member)
        score = self.r.zscore(self._key("scores"), member)
        return None if score is None else float(score)

    def get_rank(self, member: str, *, method: RankMethod | None = None) -> int | None:
        """1-based rank, highest score first, ties per ``method``; None if not on the board."""
        checks.text("member", member)
        how = self._method(method)
        if how == "ordinal":
            pos: Any = self.r.zrevrank(self._key("scores"), member)  # no WITHSCORE: an int
            return None if pos is None else int(pos) + 1
        rank = self._rank(keys=self.keys[:2], args=[member, how])
        return None if rank is None else int(rank)

    def get_top(self, n: int, *, method: RankMethod | None = None) -> list[Entry]:
        """The ``n`` highest members (fewer if the board is smaller), ranked per ``method``."""
        checks.integer("n", n, low=0, high=MAX_WINDOW)
        how = self._method(method)
        if n == 0:
            return []
        reply = self._window(keys=self.keys[:2], args=["top", "", n, how])
        return self._entries(reply, how)

    def get_around_me(
        self, member: str, n: int, *, method: RankMethod | None = None
    ) -> list[Entry] | None:
        """``member`` with up to ``n`` members above and ``n`` below (clipped at the ends).

        Neighbours are taken in Redis's ordinal order; ranks shown follow ``method``.
        None if ``member`` is not on the board.
        """
        checks.text("member", member)
        checks.integer("n", n, low=0, high=MAX_WINDOW)
        how = self._method(method)
        reply = self._window(keys=self.keys[:2], args=["around", member, n, how])
        return None if reply is None else self._entries(reply, how)

    def get_percentile(self, member: str) -> float | None:
        """Percent of the board with a score strictly below ``member``'s (0 <= p < 100).

        The lowest scorer (and everyone tied with them) is at 0. On a board of n members
        where k of them share the top score, each of those k is at 100 * (n - k) / n
        (100 * (n - 1) / n when the leader's score is unique). None if ``member`` is not on
        the board.
        """
        checks.text("member", member)
        reply = self._percentile(keys=self.keys[:1], args=[member])
        if reply is None:
            return None
        below, total = int(reply[0]), int(reply[1])
        return 100.0 * below / total

    @staticmethod
    def _entries(reply: Any, method: RankMethod) -> list[Entry]:
        start, above, items = int(reply[0]), int(reply[1]), reply[2]
        rows: list[Entry] = []
        prev_score: float | None = None
        rank = 0
        for i in range(0, len(items), 2):
            member, score = as_text(items[i]), float(items[i + 1])
            pos = start + i // 2  # 0-based ordinal position
            if method == "ordinal":
                rank = pos + 1
            elif prev_score is None:
                rank = above + 1
            elif score != prev_score:
                rank = pos + 1 if method == "competition" else rank + 1
            rows.append(Entry(rank, member, score))
            prev_score = score
        return rows
