"""Make labkit/data/events_sample.csv.gz: a seeded, realistic product event log for notebook 07.

    python data/make_events.py            # writes labkit/data/events_sample.csv.gz (same bytes every run)

Columns: ``ts`` (epoch seconds, UTC), ``user_id`` (dense int, 0..N_USERS-1), ``event``,
``platform``. The shape, all from one seed:

- 42 UTC days from 2026-10-01; daily volume grows ~1% a day, weekends run at 70%.
- Time of day follows a diurnal curve (quiet around 04:00 UTC, busy 14:00-20:00 UTC).
- Users sign up over the period (a user is active only from their signup day on), and their
  activity is heavy-tailed: Zipf weights (alpha 0.9), shuffled over ids, so a few users make
  a large share of the events and most users appear on a few days only.
- Event types: page_view, search, click, add_to_cart, purchase, login, with fixed shares;
  each user keeps one platform (web, ios, android).
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 2026
N_USERS = 20_000
START = datetime(2026, 10, 1, tzinfo=UTC)
N_DAYS = 42
BASE_EVENTS_PER_DAY = 900
GROWTH_PER_DAY = 0.01
WEEKEND_FACTOR = 0.7
ZIPF_ALPHA = 0.9
EVENT_TYPES = {
    "page_view": 0.50,
    "search": 0.15,
    "click": 0.17,
    "login": 0.08,
    "add_to_cart": 0.07,
    "purchase": 0.03,
}
PLATFORMS = {"web": 0.5, "ios": 0.3, "android": 0.2}
OUT = Path(__file__).resolve().parent.parent / "labkit" / "data" / "events_sample.csv.gz"


def diurnal_weights() -> np.ndarray:
    """Share of a day's events in each UTC hour: a cosine with its trough at 04:00."""
    hours = np.arange(24)
    weights = 1.0 + 0.8 * np.cos((hours - 16) * 2 * np.pi / 24)
    return weights / weights.sum()


def make_events(seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, N_USERS + 1)
    activity = 1.0 / ranks**ZIPF_ALPHA
    activity = activity[rng.permutation(N_USERS)]  # heavy users are not the low ids
    # A third of the users exist before day 0, the rest sign up evenly over the period.
    signup_day = np.where(rng.random(N_USERS) < 1 / 3, 0, rng.integers(0, N_DAYS, size=N_USERS))
    platform = rng.choice(list(PLATFORMS), size=N_USERS, p=list(PLATFORMS.values()))
    hour_p = diurnal_weights()
    frames = []
    for day in range(N_DAYS):
        when = START.timestamp() + day * 86_400
        weekday = datetime.fromtimestamp(when, tz=UTC).weekday()
        volume = BASE_EVENTS_PER_DAY * (1 + GROWTH_PER_DAY) ** day
        if weekday >= 5:
            volume *= WEEKEND_FACTOR
        n = int(rng.poisson(volume))
        eligible = np.flatnonzero(signup_day <= day)
        p = activity[eligible] / activity[eligible].sum()
        users = rng.choice(eligible, size=n, p=p)
        seconds = rng.choice(24, size=n, p=hour_p) * 3600 + rng.integers(0, 3600, size=n)
        events = rng.choice(list(EVENT_TYPES), size=n, p=list(EVENT_TYPES.values()))
        frames.append(
            pd.DataFrame(
                {
                    "ts": (when + seconds).astype(np.int64),
                    "user_id": users.astype(np.int64),
                    "event": events,
                    "platform": platform[users],
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["ts", "user_id"], kind="stable").reset_index(drop=True)


def main() -> None:
    df = make_events()
    # mtime=0 so the gzip bytes do not change between runs.
    with gzip.GzipFile(OUT, "wb", mtime=0) as gz:
        gz.write(df.to_csv(index=False).encode())
    print(
        f"{OUT.name}: {len(df):,} events, {df.user_id.nunique():,} users, "
        f"{OUT.stat().st_size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
