"""Make ``season.csv.gz``: one seeded season of a 1-v-1 game, for notebook 08_leaderboards.

Each match is two rows (one per player): ``ts`` (ISO 8601, UTC), ``match_id``, ``player``,
``points`` (3 for a win, 1 for a draw, 0 for a loss, as in league football). The shape:

- players have a hidden skill (normal) that sets their chance of winning (logistic, like Elo);
- activity is heavy-tailed (log-normal weights): a few players play a lot, most play a little;
- matches arrive over ``DAYS`` days, denser in the evening (UTC).

Integer points from a few outcomes make ties common, as in real leagues: many players end
the season on the same total, which is what the notebook's tie-ranking experiment needs.

Run ``python data/make_season.py`` to rebuild the file; the same seed gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 8
PLAYERS = 600
MATCHES = 4000
DAYS = 28
DRAW_CHANCE = 0.12
START = datetime(2026, 3, 2, tzinfo=UTC)
OUT = Path(__file__).resolve().parent.parent / "labkit" / "data" / "season.csv.gz"

_SYLLABLES = (
    "ka", "zu", "mi", "ro", "el", "an", "to", "vi", "sha", "dor", "lin", "mar", "qi", "bex",
    "fen", "ori", "pax", "yul", "nix", "tae", "gro", "wen", "ju", "cy",
)  # fmt: skip


def handles(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct gamer tags like ``"zumarqi"`` or ``"orifen42"``."""
    names: set[str] = set()
    while len(names) < n:
        parts = rng.choice(len(_SYLLABLES), size=int(rng.integers(2, 4)))
        name = "".join(_SYLLABLES[p] for p in parts)
        if rng.random() < 0.3:
            name += str(int(rng.integers(1, 100)))
        names.add(name)
    return sorted(names)


def make_season(seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    players = np.array(handles(PLAYERS, rng))
    skill = rng.normal(0, 1, PLAYERS)
    activity = rng.lognormal(0.0, 0.9, PLAYERS)
    activity /= activity.sum()
    hours = np.arange(24)
    evening = np.exp(-0.5 * ((hours - 20) / 3.5) ** 2) + 0.15
    evening /= evening.sum()
    rows = []
    for match in range(MATCHES):
        a, b = rng.choice(PLAYERS, size=2, replace=False, p=activity)
        when = START + timedelta(
            days=int(rng.integers(DAYS)),
            hours=int(rng.choice(24, p=evening)),
            seconds=int(rng.integers(3600)),
        )
        p_a = 1 / (1 + np.exp(-(skill[a] - skill[b]) * 1.2))
        roll = rng.random()
        if roll < DRAW_CHANCE:
            points = (1, 1)
        elif rng.random() < p_a:
            points = (3, 0)
        else:
            points = (0, 3)
        ts = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append((ts, match, players[a], points[0]))
        rows.append((ts, match, players[b], points[1]))
    frame = pd.DataFrame(rows, columns=["ts", "match_id", "player", "points"])
    return frame.sort_values(["ts", "match_id"], kind="mergesort").reset_index(drop=True)


def main() -> None:
    text = make_season().to_csv(index=False, lineterminator="\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:  # mtime=0: same bytes
        gz.write(text.encode())
    OUT.write_bytes(buffer.getvalue())
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, {text.count(chr(10)) - 1:,} rows)")


if __name__ == "__main__":
    main()
