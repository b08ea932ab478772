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

``prefix`` is used verbatim (default ``"leaderboard:"``); pass ``namespace.prefix`` in a
notebook or test.

What it guarantees: every operation is atomic (one command or one Lua script) and one round
trip (scripts run by EVALSHA; the first call on a fresh server also loads the script); the
three keys always agree as long as they are written only through this class.
Scores are finite: ``set_score``/``add_many`` refuse ``nan``/``inf``, and an ``increment``
whose sum would overflow to infinity is refused with the board left unchanged.
What it does not: scores are IEEE doubles (integers are exact only up to 2**53); ``add_many``
is atomic per batch, not across batches; writing the ``scores`` key directly (a bare ZADD)
leaves the dense-rank companion keys stale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple

from redis.cluster import RedisCluster

from labkit.keys import as_text, check_prefix

RankMethod = Literal["ordinal", "competition", "dense"]
RANK_METHODS: tuple[str, ...] = ("ordinal", "competition", "dense")


class Entry(NamedTuple):
    """One row of a leaderboard view."""

    rank: int
    member: str
    score: float


def _check_name(arg: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{arg} must be a non-empty string")
    return value


def _check_score(arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{arg} must be a number, not {type(value).__name__}: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{arg} must be finite, got {value!r}")
    return number + 0.0  # -0.0 -> 0.0, so 0 and -0 are one distinct score


def _check_count(arg: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{arg} must be >= 0, got {value}")
    return value


class Leaderboard:
    """A ranked board of members and scores: ``Leaderboard(r, "season-1")``.

    ``rank_method`` ("ordinal", "competition" or "dense", see the module docstring) is the
    default for ``get_rank``, ``get_top`` and ``get_around_me``; each also takes ``method=``.
    """

    # Set or increment one member's score and keep the distinct-score companions in step.
    # KEYS[1] scores zset, KEYS[2] distinct-scores zset, KEYS[3] score -> member-count hash
    # ARGV[1] member, ARGV[2] score ("set") or delta ("incr"), ARGV[3] "set" | "incr"
    # Returns the member's new score as Redis formats it, or nil, writing nothing, when an
    # increment would overflow to +-inf (ZINCRBY would store it; the sum is the same double).
    WRITE_SCRIPT = """
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
local new
if ARGV[3] == 'incr' then
  local sum = tonumber(ARGV[2])
  if old then sum = sum + tonumber(old) end
  if sum ~= sum or sum == math.huge or sum == -math.huge then return false end
  new = redis.call('ZINCRBY', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  new = redis.call('ZSCORE', KEYS[1], ARGV[1])
end
if old ~= new then
  if old then
    if redis.call('HINCRBY', KEYS[3], old, -1) <= 0 then
      redis.call('HDEL', KEYS[3], old)
      redis.call('ZREM', KEYS[2], old)
    end
  end
  if redis.call('HINCRBY', KEYS[3], new, 1) == 1 then
    redis.call('ZADD', KEYS[2], new, new)
  end
end
return new
"""

    # Set many scores at once (a bulk load), atomically for this batch.
    # KEYS[1] scores zset, KEYS[2] distinct-scores zset, KEYS[3] score -> member-count hash
    # ARGV[1], ARGV[2], ... member, score, member, score, ... (each member at most once)
    # Returns how many members were new to the board. Reads old and new scores with ZMSCORE
    # (Redis 6.2+) in chunks of 1000 and updates each changed score's count once; on a
    # server without ZMSCORE it falls back to one ZSCORE per member.
    ADD_MANY_SCRIPT = """
local probe = redis.pcall('ZMSCORE', KEYS[1], '')
local has_zmscore = not probe.err
local function scores_of(members)
  if has_zmscore then return redis.call('ZMSCORE', KEYS[1], unpack(members)) end
  local out = {}
  for i = 1, #members do out[i] = redis.call('ZSCORE', KEYS[1], members[i]) end
  return out
end
local added, delta = 0, {}
local total = #ARGV / 2
for first = 1, total, 1000 do
  local last = math.min(total, first + 999)
  local members, pairs_ = {}, {}
  for i = first, last do
    members[#members + 1] = ARGV[2 * i - 1]
    pairs_[#pairs_ + 1] = ARGV[2 * i]
    pairs_[#pairs_ + 1] = ARGV[2 * i - 1]
  end
  local old = scores_of(members)
  added = added + redis.call('ZADD', KEYS[1], unpack(pairs_))
  local new = scores_of(members)
  for i = 1, #members do
    if old[i] ~= new[i] then
      if old[i] then delta[old[i]] = (delta[old[i]] or 0) - 1 end
      delta[new[i]] = (delta[new[i]] or 0) + 1
    end
  end
end
for score, d in pairs(delta) do
  if d ~= 0 then
    local count = redis.call('HINCRBY', KEYS[3], score, d)
    if count <= 0 then
      redis.call('HDEL', KEYS[3], score)
      redis.call('ZREM', KEYS[2], score)
    elseif count == d then
      redis.call('ZADD', KEYS[2], score, score)
    end
  end
end
return added
"""

    # Remove one member.
    # KEYS[1] scores zset, KEYS[2] distinct-scores zset, KEYS[3] score -> member-count hash
    # ARGV[1] member. Returns 1 if it was on the board, else 0.
    REMOVE_SCRIPT = """
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not old then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[3], old, -1) <= 0 then
  redis.call('HDEL', KEYS[3], old)
  redis.call('ZREM', KEYS[2], old)
end
return 1
"""

    # Tie-sharing rank of one member.
    # KEYS[1] scores zset, KEYS[2] distinct-scores zset
    # ARGV[1] member, ARGV[2] "competition" | "dense". Returns the rank, or nil if unknown.
    RANK_SCRIPT = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return false end
local key = KEYS[1]
if ARGV[2] == 'dense' then key = KEYS[2] end
return redis.call('ZCOUNT', key, '(' .. score, '+inf') + 1
"""

    # A window of the board: the top n, or n above and n below a member.
    # KEYS[1] scores zset, KEYS[2] distinct-scores zset
    # ARGV[1] "top" | "around", ARGV[2] member (for "around"), ARGV[3] n,
    # ARGV[4] "ordinal" | "competition" | "dense"
    # Returns {first 0-based position, members strictly above the first row (competition) or
    # distinct scores above it (dense), {member, score, ...}}, or nil for an unknown member.
    WINDOW_SCRIPT = """
local n = tonumber(ARGV[3])
local start, stop = 0, n - 1
if ARGV[1] == 'around' then
  local pos = redis.call('ZREVRANK', KEYS[1], ARGV[2])
  if not pos then return false end
  start = math.max(0, pos - n)
  stop = pos + n
end
local items = redis.call('ZREVRANGE', KEYS[1], start, stop, 'WITHSCORES')
local above = 0
if #items > 0 and ARGV[4] ~= 'ordinal' then
  local key = KEYS[1]
  if ARGV[4] == 'dense' then key = KEYS[2] end
  above = redis.call('ZCOUNT', key, '(' .. items[2], '+inf')
end
return {start, above, items}
"""

    # Share of the board strictly below a member.
    # KEYS[1] scores zset; ARGV[1] member. Returns {members strictly below, board size}, or nil.
    PERCENTILE_SCRIPT = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return false end
return {redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. score), redis.call('ZCARD', KEYS[1])}
"""

    def __init__(
        self,
        r: Any,
        name: str,
        *,
        prefix: str = "leaderboard:",
        rank_method: RankMethod = "ordinal",
    ) -> None:
        _check_name("name", name)
        if "{" in name or "}" in name:
            raise ValueError(
                f"name must not contain '{{' or '}}' (it is the hash tag), got {name!r}"
            )
        check_prefix(prefix)
        self.rank_method: RankMethod = self._check_method(rank_method)
        self.r = r
        self.name = name
        self.prefix = prefix
        self._write = r.register_script(self.WRITE_SCRIPT)
        self._add_many = r.register_script(self.ADD_MANY_SCRIPT)
        self._remove = r.register_script(self.REMOVE_SCRIPT)
        self._rank = r.register_script(self.RANK_SCRIPT)
        self._window = r.register_script(self.WINDOW_SCRIPT)
        self._percentile = r.register_script(self.PERCENTILE_SCRIPT)

    # -- keys ------------------------------------------------------------------------------

    def _key(self, part: str) -> str:
        """The one place key names are built: ``<prefix>{<name>}:<part>``."""
        return f"{self.prefix}{{{self.name}}}:{part}"

    @property
    def keys(self) -> list[str]:
        """The board's keys: scores, distinct scores, score counts (one hash slot)."""
        return [self._key("scores"), self._key("distinct"), self._key("counts")]

    @staticmethod
    def _check_method(method: Any) -> RankMethod:
        if method not in RANK_METHODS:
            raise ValueError(f"rank_method must be one of {RANK_METHODS}, got {method!r}")
        return method  # type: ignore[no-any-return]

    def _method(self, method: str | None) -> RankMethod:
        return self.rank_method if method is None else self._check_method(method)

    # -- writes ----------------------------------------------------------------------------

    def set_score(self, member: str, score: float) -> None:
        """Set ``member``'s score (adding the member if new)."""
        _check_name("member", member)
        value = _check_score("score", score)
        self._write(keys=self.keys, args=[member, repr(value), "set"])

    def increment(self, member: str, by: float = 1) -> float:
        """Add ``by`` to ``member``'s score (0 if new); return the new score.

        A sum that overflows a double (past about +-1.8e308) raises ValueError and leaves the
        board unchanged, as ``set_score`` refuses a non-finite score.
        """
        _check_name("member", member)
        delta = _check_score("by", by)
        new = self._write(keys=self.keys, args=[member, repr(delta), "incr"])
        if new is None:
            raise ValueError(
                f"by={by!r} would take {member!r}'s score past the largest finite double; "
                "the board is unchanged"
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
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1, got {batch!r}")
        checked: list[tuple[float, str]] = []
        for member, score in scores.items():
            _check_name("member", member)
            checked.append((_check_score(f"score of {member!r}", score), member))
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
        if isinstance(self.r, RedisCluster):  # a cluster pipeline refuses scripts
            return sum(int(self._add_many(keys=self.keys, args=chunk)) for chunk in chunks)
        pipe = self.r.pipeline(transaction=False)
        for chunk in chunks:
            self._add_many(keys=self.keys, args=chunk, client=pipe)
        return sum(int(n) for n in pipe.execute())

    def remove(self, member: str) -> bool:
        """Remove ``member``; True if it was on the board."""
        _check_name("member", member)
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
        _check_name("member", member)
        score = self.r.zscore(self._key("scores"), member)
        return None if score is None else float(score)

    def get_rank(self, member: str, *, method: RankMethod | None = None) -> int | None:
        """1-based rank, highest score first, ties per ``method``; None if not on the board."""
        _check_name("member", member)
        how = self._method(method)
        if how == "ordinal":
            pos = self.r.zrevrank(self._key("scores"), member)
            return None if pos is None else int(pos) + 1
        rank = self._rank(keys=self.keys[:2], args=[member, how])
        return None if rank is None else int(rank)

    def get_top(self, n: int, *, method: RankMethod | None = None) -> list[Entry]:
        """The ``n`` highest members (fewer if the board is smaller), ranked per ``method``."""
        _check_count("n", n)
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
        _check_name("member", member)
        _check_count("n", n)
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
        _check_name("member", member)
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


def rank_frame(scores: Iterable[tuple[str, float]]) -> Any:
    """The reference ranking of ``(member, score)`` pairs with pandas, for checking a board.

    Columns ``member, score, ordinal, competition, dense``. ``ordinal`` reproduces Redis's
    tie order (score descending, then member descending); the other two are pandas'
    ``rank(method="min")`` and ``rank(method="dense")`` on descending scores.
    """
    import pandas as pd

    frame = pd.DataFrame(list(scores), columns=["member", "score"])
    frame = frame.sort_values(["score", "member"], ascending=False, kind="mergesort")
    frame["ordinal"] = range(1, len(frame) + 1)
    frame["competition"] = frame["score"].rank(method="min", ascending=False).astype(int)
    frame["dense"] = frame["score"].rank(method="dense", ascending=False).astype(int)
    return frame.reset_index(drop=True)
