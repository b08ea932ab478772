"""Make ``catalogue.sqlite``: a small, seeded product catalogue for notebook 01 (caching).

    python data/make_catalogue.py          # rewrites labkit/data/catalogue.sqlite (shipped with the package)

Tables: ``categories`` (50 rows), ``products`` (2,000 rows), ``reviews`` (3,000 rows). The same
seed gives the same rows every time. ``reviews.product_id`` is deliberately left without an
index, so ``PRODUCT_PAGE_SQL`` (a product with its category's five best-rated products, a join
and a correlated aggregate) is slow the way an unindexed production query is slow: it scans
the reviews table once per product in the category. No ``sleep`` anywhere.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from pathlib import Path

SEED = 2015
N_CATEGORIES = 50
N_PRODUCTS = 2000
N_REVIEWS = 3000
OUT = Path(__file__).resolve().parent.parent / "labkit" / "data" / "catalogue.sqlite"

# ? = product id. Returns the product's own row first (rank 0), then its category's five
# best-rated products, each with review count and mean rating.
PRODUCT_PAGE_SQL = """
WITH me AS (SELECT id, category_id FROM products WHERE id = ?)
SELECT p.id, p.name, p.price_cents, c.name AS category,
       (SELECT COUNT(*) FROM reviews r WHERE r.product_id = p.id) AS n_reviews,
       (SELECT ROUND(AVG(r.rating), 2) FROM reviews r WHERE r.product_id = p.id) AS rating,
       CASE WHEN p.id = me.id THEN 0 ELSE 1 END AS rank
FROM products p
JOIN me ON p.category_id = me.category_id
JOIN categories c ON c.id = p.category_id
ORDER BY rank, rating DESC, p.id
LIMIT 6
"""

_ADJECTIVES = [
    "Compact",
    "Classic",
    "Deluxe",
    "Eco",
    "Heavy",
    "Light",
    "Mini",
    "Pro",
    "Smart",
    "Travel",
    "Ultra",
    "Vintage",
]
_NOUNS = [
    "Kettle",
    "Lamp",
    "Chair",
    "Desk",
    "Mug",
    "Backpack",
    "Blender",
    "Speaker",
    "Jacket",
    "Tent",
    "Clock",
    "Pan",
]
_WORDS = [
    "good",
    "great",
    "fine",
    "poor",
    "solid",
    "cheap",
    "sturdy",
    "flimsy",
    "lovely",
    "noisy",
    "quiet",
    "fast",
    "slow",
]


def build(path: Path = OUT, seed: int = SEED) -> Path:
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.executescript(
            """
            CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
            CREATE TABLE products (
                id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL REFERENCES categories(id),
                name TEXT NOT NULL, price_cents INTEGER NOT NULL);
            CREATE TABLE reviews (
                id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL REFERENCES products(id),
                rating INTEGER NOT NULL, body TEXT NOT NULL);
            CREATE INDEX products_category ON products(category_id);
            """
        )
        con.executemany(
            "INSERT INTO categories VALUES (?, ?)",
            [(i, f"Category {i:02d}") for i in range(N_CATEGORIES)],
        )
        con.executemany(
            "INSERT INTO products VALUES (?, ?, ?, ?)",
            [
                (
                    i,
                    rng.randrange(N_CATEGORIES),
                    f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {i}",
                    rng.randrange(199, 49_999),
                )
                for i in range(N_PRODUCTS)
            ],
        )
        con.executemany(
            "INSERT INTO reviews VALUES (?, ?, ?, ?)",
            [
                (
                    i,
                    rng.randrange(N_PRODUCTS),
                    rng.randint(1, 5),
                    " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8))),
                )
                for i in range(N_REVIEWS)
            ],
        )
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    return path


if __name__ == "__main__":
    out = build(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
