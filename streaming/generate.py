"""Seeded synthetic REES46 clickstream, calibrated to the published figures and the real sample.

The real month files are too big to ship and the 683-row sample is too small to
learn from, so the pipeline and the models are exercised on generated data. It is
statistically like REES46's multi-category store where figures exist (event mix,
events per session, null shares, category shares, prices by category, zero
prices, an hour-of-day curve, a Singles' Day spike; tests/data/README.md lists
each target and where it comes from) and ``tests/unit/test_generator_realism.py``
compares a generated file with those figures and with the real sample.

Model metrics computed on this data describe the generator, not a shop: the
purchase behaviour below is an assumption, written so that no single observable
rule gives the answer away. Buying depends, stochastically, on latent factors a
shop plausibly has:

* every user has a propensity to buy, kept across sessions, so a user's history
  helps predict their next purchase;
* every user has one to three favourite categories; most sessions stay in one
  of them, so later sessions' categories follow from earlier ones;
* longer sessions and repeat views of a product raise the odds; so do popular
  and cheaper products and some categories (smartphones convert best, as in the
  real data).

The purchased items are drawn among the session's views (more often the ones
viewed more), sometimes from outside them; the order comes at a random point
after the first item's view, not after a particular run of views; a cart before
it is likely, not certain; carts are abandoned in buying and non-buying sessions
alike; an order holds one or several items, all in the same second. The default
store profile has no ``remove_from_cart`` events, like REES46's multi-category
October and November files; ``profile="cosmetics"`` adds them.

Memory stays flat from 1 k to 100 M events: time is cut into windows, each
window's sessions are generated with numpy in one vectorised batch, events that
spill past the window wait in a small carry-over buffer, and each window is
sorted by time and written before the next starts. Per-user traits are hashes
of (seed, user index), not stored arrays. Output is byte-identical for the same
arguments (gzip is written with a zero mtime and no file name).

Usage: ``python -m streaming.generate --events 1000000 --start 2019-11-01 --days 7 --seed 42 --out data.csv.gz``
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO

import numpy as np
import typer

from streaming.events import CSV_COLUMNS

# --- calibration targets (tests/data/README.md lists each figure and its source) -------------------

# Bumped whenever the same arguments give different events, so a file cached under the
# old rules (lakehouse.pipeline reuses generated files by name) is not taken for a new one.
GENERATOR_VERSION = 2

EMPTY_CODE_SHARE = 0.33  # rows with an empty category_code (published: 32 % full file, 33 % sample)
# Exact copies of a row. No share is published; the real sample has none in 683 rows, which is likely
# at this rate (26 %) and unlikely at 0.5 % (3 %).
DUPLICATE_RATE = 0.002
NULL_SESSION_PER_EVENT = 10 / 67_501_979  # November has 10 such rows; we always make a few
MIN_NULL_SESSIONS = 3
SPIKE_DAY = date(2019, 11, 11)  # Singles' Day: about twice the daily traffic
MAX_VIEWS_PER_SESSION = 150
WINDOW_EVENTS = 100_000
EVENTS_PER_SESSION = 3.4  # published; sizes the batches of sessions per window
VIEWS_MEAN = 3.2  # views per session, so that views + carts + purchases make 3.4 events
VIEWS_SHAPE = 0.45  # negative binomial shape: a median of 2 events, a long tail of browsers
# Share of views that show the previous view's product again: the real sample repeats the previous
# product on 29 % of the events after a session's first; fresh draws repeat it now and then too.
REPEAT_VIEW = 0.2
# Sessions that buy: the published mix has 1.36 % purchase rows at 3.4 events per session, 0.046 purchase
# rows per session; at ORDER_ITEMS_MEAN items per order that is about 3 % of sessions.
BUY_INTERCEPT = 5.15
# Items per order: geometric, P(1) = 0.65, P(2) = 0.23, P(3) = 0.08, mean 1.54, at most 8. An assumption
# (no figure is published); REES46 buyers often buy several items in one second.
ORDER_ONE_ITEM = 0.65
ORDER_ITEMS_MEAN = 1 / ORDER_ONE_ITEM
MAX_ORDER_ITEMS = 8
UNSEEN_ITEM = 0.12  # first item not viewed in the session (carted on an earlier visit)
EXTRA_ITEM_VIEWED = 0.5  # further items: a product viewed in the session, else one of its main category
CART_BEFORE_ITEM = 0.55  # an ordered item has a cart event earlier in the same session
# Carts not (or not yet) bought: the published mix has 4.49 % cart rows, 3.3 per purchase row.
CART_INTERCEPT = 3.4
CART_REPEAT = 0.3  # chance of one more cart event for the same product (quantity changes, re-adds)
MAX_CART_EVENTS = 6
# A session followed by another of the same user soon after (a new session id mid-visit): this share, after a
# delay of this many seconds on average; fitted to the real sample's 240 sessions of 233 users in 278 s.
FOLLOW_ON_SESSION = 0.05
FOLLOW_ON_DELAY = 90.0

# Leaf categories: (category_code, share of all rows, purchase log-odds bonus, median price).
# Shares per top level follow the published sample: electronics 36 %, appliances 12 %,
# computers 6 %, furniture/apparel/auto 3 % each, then the small ones; the rest is empty.
# Median prices per top level follow the real sample where it has 20+ rows of it (electronics 283,
# appliances 272, computers 412, furniture 70, apparel 70, construction 66, empty code 66); the split
# over leaves and the small top levels are assumptions.
LEAF_CATEGORIES: tuple[tuple[str, float, float, float], ...] = (
    ("electronics.smartphone", 0.245, 0.3, 400.0),
    ("electronics.audio.headphone", 0.035, -0.1, 90.0),
    ("electronics.video.tv", 0.030, 0.0, 850.0),
    ("electronics.clocks", 0.020, -0.1, 200.0),
    ("electronics.tablet", 0.010, 0.0, 250.0),
    ("electronics.audio.acoustic", 0.008, -0.2, 90.0),
    ("electronics.telephone", 0.007, -0.1, 25.0),
    ("electronics.camera.video", 0.005, -0.3, 350.0),
    ("appliances.kitchen.washer", 0.030, 0.0, 530.0),
    ("appliances.kitchen.refrigerators", 0.028, 0.0, 800.0),
    ("appliances.environment.vacuum", 0.025, 0.0, 170.0),
    ("appliances.kitchen.microwave", 0.010, 0.0, 110.0),
    ("appliances.iron", 0.009, 0.0, 40.0),
    ("appliances.environment.water_heater", 0.008, -0.1, 150.0),
    ("appliances.sewing_machine", 0.005, -0.2, 230.0),
    ("appliances.personal.massager", 0.005, -0.3, 60.0),
    ("computers.notebook", 0.035, 0.1, 600.0),
    ("computers.desktop", 0.010, -0.2, 700.0),
    ("computers.peripherals.printer", 0.008, -0.2, 150.0),
    ("computers.components.videocards", 0.007, -0.2, 450.0),
    ("furniture.living_room.sofa", 0.008, -0.5, 150.0),
    ("furniture.bedroom.bed", 0.006, -0.5, 120.0),
    ("furniture.kitchen.table", 0.006, -0.5, 60.0),
    ("furniture.kitchen.chair", 0.010, -0.5, 35.0),
    ("apparel.shoes", 0.015, -0.4, 70.0),
    ("apparel.shoes.keds", 0.010, -0.4, 60.0),
    ("apparel.costume", 0.005, -0.5, 50.0),
    ("auto.accessories.player", 0.012, -0.3, 220.0),
    ("auto.accessories.videoregister", 0.018, -0.3, 140.0),
    ("construction.tools.drill", 0.008, -0.3, 80.0),
    ("construction.tools.light", 0.004, -0.4, 20.0),
    ("kids.toys", 0.006, -0.4, 25.0),
    ("kids.carriage", 0.004, -0.4, 200.0),
    ("sport.bicycle", 0.004, -0.4, 250.0),
    ("sport.trainer", 0.002, -0.5, 400.0),
    ("accessories.bag", 0.004, -0.5, 40.0),
    ("medicine.tools.tonometer", 0.002, -0.3, 45.0),
    ("country_yard.lawn_mower", 0.002, -0.4, 180.0),
    ("stationery.cartrige", 0.001, -0.5, 30.0),
)
N_EMPTY_CODE_CATEGORIES = 120
# Rows without a brand: published about 14 %. The split follows the real sample, where rows without a category
# code lack a brand three times as often (30.5 % against 9.9 %): 8.3 % and 25.6 % make 14 % at a third empty codes.
EMPTY_BRAND_KNOWN_CODE = 0.083
EMPTY_BRAND_EMPTY_CODE = 0.256
BRANDED_PER_CATEGORY = 5  # a category's best sellers always carry a brand

BRANDS: dict[str, tuple[tuple[str, float], ...]] = {
    "electronics.smartphone": (("samsung", 0.30), ("apple", 0.25), ("xiaomi", 0.22), ("huawei", 0.10), ("oppo", 0.06), ("meizu", 0.04)),
    "electronics": (("samsung", 0.2), ("sony", 0.15), ("lg", 0.12), ("xiaomi", 0.12), ("jbl", 0.1), ("apple", 0.1), ("philips", 0.1)),
    "appliances": (("samsung", 0.2), ("lg", 0.18), ("bosch", 0.15), ("indesit", 0.12), ("beko", 0.1), ("redmond", 0.1), ("polaris", 0.1)),
    "computers": (("lenovo", 0.22), ("hp", 0.2), ("asus", 0.18), ("acer", 0.15), ("apple", 0.1), ("msi", 0.08), ("canon", 0.07)),
}
BRAND_BOOST: dict[str, float] = {"samsung": 3.0, "apple": 2.6, "xiaomi": 2.3}
GENERIC_BRANDS: tuple[str, ...] = (
    "lucente", "elenberg", "bosch", "karcher", "makita", "ikea", "nike", "adidas", "puma", "artel", "vitek", "scarlett",
    "cordiant", "pioneer", "lego", "stels", "forward", "intex", "tefal", "vivienne", "respect", "dauscher", "kiturami", "omron",
)  # fmt: skip

# Hour-of-day curve (UTC): a smooth day, peak at 14 h, trough at 2 h (5 h in the shop's UTC+3). Its shape is an
# assumption; one point is measured: the real sample holds 683 events in the first 278 s of 1 November, 8,845 an
# hour, against 67,501,979 / 720 = 93,753 an hour over the month, so midnight UTC runs at about 0.094 of the mean
# hour; the curve gives 0.093 there.
PEAK_HOUR = 14.0
NIGHT_FLOOR = 0.025
DAY_SHAPE = 1.5
# Prices: lognormal around the category's median. Categories without a code scatter around 75: the sample's 66,
# raised a little so that the overall median meets the published 164.61.
EMPTY_CODE_MEDIAN_PRICE = 75.0
EMPTY_CODE_PRICE_SPREAD = 0.6  # log sigma of those categories' medians
PRICE_SIGMA = 1.0  # log sigma within a category
# The published p99 (1,681.90) is only 2.2 times the p90 (758.24), a thinner tail than a lognormal's (2.8 at
# sigma 1): above TAIL_START, log prices grow at TAIL_SLOPE of the rate. The cut at MAX_PRICE is an assumption.
TAIL_START = 1000.0
TAIL_SLOPE = 0.8
MAX_PRICE = 2_600.0
# Published: 188,088 of 67,501,979 November rows (0.28 %) have a price of zero or less. Zero-price products are
# picked among the less popular ones until they carry that share of the rows; one in twenty of them is
# negative instead, so the ingest's quarantine sees some.
AT_MOST_ZERO_PRICE_ROWS = 188_088 / 67_501_979
NEGATIVE_AMONG_AT_MOST_ZERO = 0.05
POPULAR_PER_CATEGORY = 20  # products that never get a zero price

EVENT_NAMES: tuple[str, ...] = ("view", "cart", "purchase", "remove_from_cart")
VIEW, CART, PURCHASE, REMOVE = 0, 1, 2, 3
# Order of events anchored at the same view: the view, then a cart, then a purchase, then a removal.
_OFFSET = np.array([0, 1, 2, 3], dtype=np.int64)
# Median seconds before an event of each type, and the spread (lognormal sigma), times a pace per session:
# (views / 2) ** -PACE_BY_LENGTH, so long sessions move faster, and a lognormal factor of sigma PACE_SIGMA.
# Target: the real sample's gaps between a session's events (quartiles 16.5, 29 and 52 s) and its events per
# session within 278 s (2.85). Generated and cut the same way: about 12, 23 and 43 s, and 2.5; slower
# sessions would match the gaps and miss the events per cut session further.
_GAP_MEDIAN = np.array([40.0, 20.0, 60.0, 25.0])
_GAP_SIGMA = np.array([0.95, 0.8, 0.9, 0.8])
PACE_BY_LENGTH = 0.3
PACE_SIGMA = 0.3

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a fast, good integer hash, so per-user traits need no stored state."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _unit(salt: int, index: np.ndarray, trait: int) -> np.ndarray:
    """A uniform [0, 1) number per index, fixed by (salt, index, trait)."""
    with np.errstate(over="ignore"):
        key = (index.astype(np.uint64) * np.uint64(16) + np.uint64(trait)) ^ np.uint64(salt)
    return (_mix(key) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def hour_weight(hour: np.ndarray | float) -> np.ndarray:
    """Relative traffic at a UTC hour of day (fractional hours allowed); see PEAK_HOUR."""
    bump = ((1.0 + np.cos(2.0 * np.pi * (np.asarray(hour, dtype=float) - PEAK_HOUR) / 24.0)) / 2.0) ** DAY_SHAPE
    return NIGHT_FLOOR + (1.0 - NIGHT_FLOOR) * bump


@dataclass(frozen=True)
class Catalog:
    """Categories and products, fixed by the seed; products carry their CSV text."""

    category_ids: np.ndarray  # int64, one per category
    category_codes: list[str]  # "" for unknown
    category_cdf: np.ndarray  # cumulative row share, for inverse-CDF draws
    category_bonus: np.ndarray  # purchase log-odds bonus
    product_cat: np.ndarray  # category index of each product
    product_cdf: np.ndarray  # per category: cat_index + cumulative popularity within the category
    product_text: list[str]  # "product_id,category_id,category_code,brand,price"
    product_pop: np.ndarray  # popularity weight within its category (for the purchase model)
    # log popularity, standardised over the category's rows: the purchase model's term, which must not drift
    # with the catalogue's size (a bigger catalogue has more extreme best sellers)
    product_pop_z: np.ndarray
    product_price_z: np.ndarray  # price level, standard normal (for the purchase model: cheaper converts more)

    def draw_categories(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self.category_cdf, u, side="right"), len(self.category_ids) - 1)

    def draw_products(self, categories: np.ndarray, u: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.product_cdf, categories + u, side="right")
        return np.minimum(idx, len(self.product_cat) - 1)


def build_catalog(rng: np.random.Generator, n_products: int) -> Catalog:
    """A category tree with the published top-level shares, and products with brands and prices."""
    codes = [c[0] for c in LEAF_CATEGORIES]
    shares = [c[1] for c in LEAF_CATEGORIES]
    bonus = [c[2] for c in LEAF_CATEGORIES]
    median = [c[3] for c in LEAF_CATEGORIES]
    known = sum(shares)
    empty_w = 1.0 / np.arange(1, N_EMPTY_CODE_CATEGORIES + 1) ** 0.8
    empty_w = empty_w / empty_w.sum() * EMPTY_CODE_SHARE
    share = np.concatenate([np.array(shares) / known * (1 - EMPTY_CODE_SHARE), empty_w])
    codes += [""] * N_EMPTY_CODE_CATEGORIES
    bonus_arr = np.concatenate([bonus, np.full(N_EMPTY_CODE_CATEGORIES, -0.3)])
    log_median = np.log(
        np.concatenate([median, EMPTY_CODE_MEDIAN_PRICE * np.exp(rng.normal(0, EMPTY_CODE_PRICE_SPREAD, N_EMPTY_CODE_CATEGORIES))])
    )
    n_cat = len(codes)
    cat_ids = 2053013552000000000 + rng.choice(17_999_999_999, size=n_cat, replace=False).astype(np.int64) * 1000
    cat_ids += rng.integers(0, 1000, n_cat)

    # Products per category in proportion to the category's traffic (at least 3 each).
    per_cat = np.maximum(3, np.round(share * n_products)).astype(np.int64)
    product_cat = np.repeat(np.arange(n_cat), per_cat)
    n = len(product_cat)
    product_ids = (1_000_000 + rng.choice(59_000_000, size=n, replace=False)).astype(np.int64)
    # Popularity: Zipf-like within the category, in random order.
    rank = np.concatenate([rng.permutation(k) for k in per_cat])
    brands = _brands(rng, [codes[c] for c in product_cat])
    # The big makers' products are the popular ones (top brands by purchases: samsung, apple, xiaomi).
    pop = 1.0 / (rank + 1.0) ** 0.9 * np.array([BRAND_BOOST.get(b, 1.0) for b in brands])
    starts = np.concatenate([[0], np.cumsum(per_cat)[:-1]])
    within = np.cumsum(pop) - np.repeat(np.cumsum(pop)[starts] - pop[starts], per_cat)
    totals = np.repeat(within[starts + per_cat - 1], per_cat)
    product_cdf = product_cat + within / totals
    product_cdf[starts + per_cat - 1] = np.arange(n_cat) + 1.0  # exact ends
    row_share = share[product_cat] * pop / np.repeat(totals[starts], per_cat)
    brands = _without_brand(rng, brands, row_share, rank, np.array([codes[c] == "" for c in product_cat.tolist()]))
    # A category's best sellers sit nearer its typical price than its long tail does.
    spread = PRICE_SIGMA * np.minimum(1.0, 0.3 + 0.1 * np.log1p(rank))
    log_price = log_median[product_cat] + spread * rng.standard_normal(n)
    tail = math.log(TAIL_START)
    log_price = np.minimum(np.where(log_price > tail, tail + TAIL_SLOPE * (log_price - tail), log_price), math.log(MAX_PRICE))
    price = _at_most_zero_prices(rng, np.round(np.exp(log_price), 2), row_share, rank)
    texts = [
        f"{pid},{cat_ids[c]},{codes[c]},{b},{p:.2f}"
        for pid, c, b, p in zip(product_ids.tolist(), product_cat.tolist(), brands, price.tolist(), strict=True)
    ]
    return Catalog(
        category_ids=cat_ids,
        category_codes=codes,
        category_cdf=np.cumsum(share) / share.sum(),
        category_bonus=bonus_arr,
        product_cat=product_cat,
        product_cdf=product_cdf,
        product_text=texts,
        product_pop=pop * per_cat[product_cat] / np.repeat(totals[starts], per_cat),
        product_pop_z=_row_standardised(np.log(pop), pop, starts, per_cat),
        product_price_z=(log_price - log_price.mean()) / log_price.std(),
    )


def _row_standardised(x: np.ndarray, weight: np.ndarray, starts: np.ndarray, per_cat: np.ndarray) -> np.ndarray:
    """``x`` minus its ``weight``-weighted mean within each category, over its weighted standard deviation there."""
    total = np.add.reduceat(weight, starts)
    mean = np.add.reduceat(weight * x, starts) / total
    centred = x - np.repeat(mean, per_cat)
    sd = np.sqrt(np.add.reduceat(weight * centred**2, starts) / total)
    return centred / np.repeat(np.maximum(sd, 1e-9), per_cat)


def _pick_by_rows(rng: np.random.Generator, candidates: np.ndarray, row_share: np.ndarray, target: float) -> np.ndarray:
    """Random candidates, taken until they carry ``target`` of all rows.

    Picking by row share rather than by product count keeps the share steady across seeds and sizes: a few
    very popular products picked or not would swing it by points."""
    order = rng.permutation(candidates)
    upto = int(np.searchsorted(np.cumsum(row_share[order]) / row_share.sum(), target)) + 1
    return order[:upto]


def _at_most_zero_prices(rng: np.random.Generator, price: np.ndarray, row_share: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Zero (and a few negative) prices on random less popular products, carrying the published share of rows."""
    chosen = _pick_by_rows(rng, np.flatnonzero(rank >= POPULAR_PER_CATEGORY), row_share, AT_MOST_ZERO_PRICE_ROWS)
    negative = rng.random(len(chosen)) < NEGATIVE_AMONG_AT_MOST_ZERO
    out = price.copy()
    out[chosen] = np.where(negative, -np.round(rng.uniform(1, 50, len(chosen)), 2), 0.0)
    return out


def _brands(rng: np.random.Generator, codes: list[str]) -> list[str]:
    """Brand per product: known makers for known categories, generic ones elsewhere."""
    out: list[str] = []
    pick = rng.random(len(codes))
    for code, pi in zip(codes, pick.tolist(), strict=True):
        table = BRANDS.get(code) or BRANDS.get(code.split(".")[0])
        if table is None or pi > 0.9:
            out.append(GENERIC_BRANDS[int(pi * 1e6) % len(GENERIC_BRANDS)])
            continue
        names, weights = zip(*table, strict=True)
        cdf = np.cumsum(weights) / sum(weights)
        out.append(names[min(int(np.searchsorted(cdf, pi / 0.9)), len(names) - 1)])
    return out


def _without_brand(
    rng: np.random.Generator, brands: list[str], row_share: np.ndarray, rank: np.ndarray, empty_code: np.ndarray
) -> list[str]:
    """Empty the brand of random products, by row share: EMPTY_BRAND_KNOWN_CODE of the rows with a category code,
    EMPTY_BRAND_EMPTY_CODE of those without. A category's best sellers and the big makers (whose products
    are boosted in popularity) keep theirs."""
    out = list(brands)
    eligible = (rank >= BRANDED_PER_CATEGORY) & np.array([b not in BRAND_BOOST for b in brands])
    for group, target in ((~empty_code, EMPTY_BRAND_KNOWN_CODE), (empty_code, EMPTY_BRAND_EMPTY_CODE)):
        in_group = row_share[group].sum() / row_share.sum()
        for i in _pick_by_rows(rng, np.flatnonzero(group & eligible), row_share, target * in_group).tolist():
            out[i] = ""
    return out


@dataclass(frozen=True)
class Profile:
    """The kind of store the events come from."""

    name: str
    remove_per_cart: float  # share of carts not bought that are later removed


# The default is REES46's multi-category store, whose October and November files hold no remove_from_cart. The
# cosmetics profile adds removals (REES46's cosmetics shop records them) and changes nothing else: its catalog,
# prices and rates stay the multi-category store's, and its removal rate is not calibrated to any figure.
PROFILES: dict[str, Profile] = {
    "electronics": Profile("electronics", 0.0),
    "cosmetics": Profile("cosmetics", 0.4),
}


@dataclass(frozen=True)
class Params:
    events: int
    start: datetime
    days: int
    seed: int
    spike_day: date | None
    spike_factor: float
    profile: Profile = PROFILES["electronics"]


@dataclass
class Events:
    """A batch of events as parallel arrays (one row per event)."""

    time: np.ndarray  # int64 epoch seconds
    key: np.ndarray  # int64 order within the run: session, position, type offset
    etype: np.ndarray  # int8 index into EVENT_NAMES
    product: np.ndarray  # int64 product index
    user: np.ndarray  # int64 user index
    session: np.ndarray  # int64 global session number

    def __len__(self) -> int:
        return len(self.time)

    def take(self, idx: np.ndarray) -> Events:
        return Events(*(getattr(self, f)[idx] for f in _FIELDS))

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        return Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    @staticmethod
    def empty() -> Events:
        """No event: the chunk of a window that got none (a small file's quiet hours)."""
        return Events(*(np.empty(0, dtype=np.int8 if f == "etype" else np.int64) for f in _FIELDS))


_FIELDS = ("time", "key", "etype", "product", "user", "session")


@dataclass(frozen=True)
class Rows:
    """Events of a batch of sessions before they get times: session (batch index), view position, type, product.

    An event at position ``pos`` comes after the view at ``pos`` and before the next view."""

    sess: np.ndarray
    pos: np.ndarray
    etype: np.ndarray
    product: np.ndarray

    @staticmethod
    def of(sess: np.ndarray, pos: np.ndarray, etype: int, product: np.ndarray) -> Rows:
        return Rows(sess, pos, np.full(len(sess), etype, dtype=np.int8), product)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        return Rows(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("sess", "pos", "etype", "product")))


@dataclass(frozen=True)
class Browse:
    """The views of a batch of sessions, one row per view, sessions in order."""

    views: np.ndarray  # views per session
    first: np.ndarray  # index of each session's first view
    sess: np.ndarray  # session of each view
    pos: np.ndarray  # position of each view within its session
    product: np.ndarray  # product of each view
    longest: np.ndarray  # per session: the longest run of views of one product (dwelling)
    main_views: np.ndarray  # per session: views in the session's main category

    def random_view(self, sessions: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A uniformly drawn view (global index) of each given session."""
        return self.first[sessions] + np.floor(u * self.views[sessions]).astype(np.int64)


def _between(lo: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A uniform integer in [lo, hi] (hi >= lo)."""
    return lo + np.floor(u * (hi - lo + 1)).astype(np.int64)


class Generator:
    """Generates a time-ordered event stream window by window."""

    def __init__(self, params: Params) -> None:
        self.p = params
        self.rng = np.random.default_rng(params.seed)
        self.salt = int(_mix(np.array([params.seed], dtype=np.uint64))[0])
        n_products = int(min(300_000, max(2_000, params.events // 40)))
        self.catalog = build_catalog(self.rng, n_products)
        sessions = params.events / EVENTS_PER_SESSION
        self.n_users = max(10, int(sessions / (1.0 + 0.08 * params.days)))
        self.next_session = 0

    # -- traits fixed per user (hashes, so nothing is stored per user) -------------------------

    def _user_traits(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latent propensity (standard normal) and up to three favourite categories."""
        u1, u2 = _unit(self.salt, users, 0), _unit(self.salt, users, 1)
        propensity = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
        favs = np.stack([self.catalog.draw_categories(_unit(self.salt, users, 2 + k)) for k in range(3)], axis=1)
        n_favs = 1 + (_unit(self.salt, users, 5) < 0.5) + (_unit(self.salt, users, 6) < 0.2)
        return propensity, favs[np.arange(len(users)), np.minimum(self.rng.integers(0, 3, len(users)), n_favs - 1)]

    def user_ids(self, users: np.ndarray) -> np.ndarray:
        """Distinct 9-digit ids starting with 5 (an affine bijection of the user index)."""
        return 510_000_000 + (users * 7_919_993 + (self.salt % 89_999_999)) % 89_999_999

    def session_ids(self, sessions: np.ndarray) -> list[str]:
        """UUID-4-like text, a hash of (seed, session number)."""
        hi = _mix(sessions.astype(np.uint64) * np.uint64(2) ^ np.uint64(self.salt))
        lo = _mix(sessions.astype(np.uint64) * np.uint64(2) + np.uint64(1) ^ np.uint64(self.salt))
        out = []
        for h, low in zip(hi.tolist(), lo.tolist(), strict=True):
            a = f"{h:016x}"
            b = f"{low:016x}"
            out.append(f"{a[:8]}-{a[8:12]}-4{a[13:16]}-{'89ab'[low >> 62]}{b[1:4]}-{b[4:16]}")
        return out

    # -- sessions ----------------------------------------------------------------------------------

    def sessions(self, n: int, t0: int, t1: int) -> Events:
        """``n`` sessions starting in [t0, t1): views, carts, orders, (removals), duplicates."""
        rng, cat = self.rng, self.catalog
        users, start = self._users_and_starts(n, t0, t1)
        propensity, fav = self._user_traits(users)
        main = np.where(rng.random(n) < 0.8, fav, cat.draw_categories(rng.random(n)))
        browse = self._browse(main)
        # The product the shopper weighs: a view, more likely of a product viewed often, popular or cheap.
        cand = self._weighted_view(browse, np.sqrt(cat.product_pop[browse.product]) * np.exp(-0.3 * cat.product_price_z[browse.product]))
        signal = self._intent(propensity, browse, browse.product[cand])
        buy = rng.random(n) < _sigmoid(signal - BUY_INTERCEPT)
        views = Rows.of(browse.sess, browse.pos, VIEW, browse.product)
        orders = self._orders(browse, np.flatnonzero(buy), cand, main)
        carts, removals = self._unbought_carts(browse, signal)
        # Pace: each session has its own; long sessions flick through products faster.
        pace = (browse.views / 2.0) ** -PACE_BY_LENGTH * np.exp(PACE_SIGMA * rng.standard_normal(n))
        return self._assemble(Rows.concat([views, orders, carts, removals]), users, start, pace)

    def _users_and_starts(self, n: int, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """Who each session belongs to, and when it starts.

        A few heavy users have many sessions. Some sessions follow another of the same user a minute or two
        later (the real sample: 240 sessions of 233 users within five minutes)."""
        rng = self.rng
        users = np.floor(self.n_users * rng.random(n) ** 1.6).astype(np.int64)
        follows = np.zeros(n, dtype=bool)
        follows[1:] = rng.random(n - 1) < FOLLOW_ON_SESSION
        head = np.maximum.accumulate(np.where(follows, 0, np.arange(n)))
        delay = np.cumsum(np.where(follows, rng.exponential(FOLLOW_ON_DELAY, n), 0.0))
        start = rng.integers(t0, t1, n)[head] + np.round(delay - delay[head]).astype(np.int64)
        return users[head], start

    def _browse(self, main: np.ndarray) -> Browse:
        """Views: mostly the session's main category; now and then the same product again (dwelling)."""
        rng, cat, n = self.rng, self.catalog, len(main)
        views = np.minimum(1 + rng.negative_binomial(VIEWS_SHAPE, VIEWS_SHAPE / (VIEWS_SHAPE + VIEWS_MEAN - 1), n), MAX_VIEWS_PER_SESSION)
        total = int(views.sum())
        first = np.concatenate([[0], np.cumsum(views)[:-1]]).astype(np.int64)
        sess = np.repeat(np.arange(n), views)
        pos = np.arange(total) - first[sess]
        repeat = (rng.random(total) < REPEAT_VIEW) & (pos > 0)
        view_cat = np.where(rng.random(total) < 0.8, main[sess], cat.draw_categories(rng.random(total)))
        fresh = cat.draw_products(view_cat, rng.random(total))
        run_start = np.maximum.accumulate(np.where(repeat, 0, np.arange(total)))
        product = fresh[run_start]
        run_len = np.bincount(run_start, minlength=total)[run_start]
        in_main = (cat.product_cat[product] == main[sess]).astype(np.int64)
        return Browse(views, first, sess, pos, product, np.maximum.reduceat(run_len, first), np.add.reduceat(in_main, first))

    def _weighted_view(self, browse: Browse, weight: np.ndarray) -> np.ndarray:
        """One view (global index) per session, drawn with probability proportional to ``weight``."""
        cum = np.cumsum(weight)
        last = browse.first + browse.views - 1
        lo = cum[browse.first] - weight[browse.first]
        target = lo + self.rng.random(len(browse.views)) * (cum[last] - lo)
        return np.clip(np.searchsorted(cum, target, side="right"), browse.first, last)

    def _intent(self, propensity: np.ndarray, browse: Browse, cand: np.ndarray) -> np.ndarray:
        """Log-odds of buying: latent and observable factors, none decisive (the draw adds logistic noise)."""
        cat = self.catalog
        return (
            1.3 * propensity
            + 0.45 * np.minimum(browse.longest - 1, 6)
            + 0.35 * np.log(browse.views)
            + 0.15 * np.log1p(browse.main_views)
            + cat.category_bonus[cat.product_cat[cand]]
            + 0.45 * np.clip(cat.product_pop_z[cand], -3.0, 3.0)
            - 0.2 * cat.product_price_z[cand]
        )

    def _orders(self, browse: Browse, buyers: np.ndarray, cand: np.ndarray, main: np.ndarray) -> Rows:
        """One order per buying session: its purchase rows (one second) and the carts some items get before it."""
        rng, cat, m = self.rng, self.catalog, len(buyers)
        # First item: the weighed product, or one carted on an earlier visit and not viewed now.
        unseen = rng.random(m) < UNSEEN_ITEM
        seen_at = np.where(unseen, 0, browse.pos[cand[buyers]])
        first_item = np.where(unseen, cat.draw_products(main[buyers], rng.random(m)), browse.product[cand[buyers]])
        # The order comes at any view from the first item's onwards, not at a particular one.
        order_pos = _between(seen_at, browse.views[buyers] - 1, rng.random(m))
        items = np.minimum(rng.geometric(ORDER_ONE_ITEM, m), MAX_ORDER_ITEMS)
        sess = np.repeat(buyers, items)
        k = len(sess)
        nth = np.arange(k) - np.repeat(np.cumsum(items) - items, items)
        # Further items: another product viewed in the session, or a popular one of its main category.
        viewed = rng.random(k) < EXTRA_ITEM_VIEWED
        other_view = browse.random_view(sess, rng.random(k))
        other = np.where(viewed, browse.product[other_view], cat.draw_products(main[sess], rng.random(k)))
        product = np.where(nth == 0, np.repeat(first_item, items), other)
        # A second unit of a product would be an identical row: an order lists distinct products, so a repeat
        # becomes another product of the category (rare repeats of that are left as they are).
        again = np.ones(k, dtype=bool)
        again[np.unique(sess * len(cat.product_cat) + product, return_index=True)[1]] = False
        product[again] = cat.draw_products(main[sess[again]], rng.random(int(again.sum())))
        viewed &= ~again
        item_seen = np.where(nth == 0, np.repeat(seen_at, items), np.where(viewed, browse.pos[other_view], 0))
        pos = np.repeat(order_pos, items)
        carted = rng.random(k) < CART_BEFORE_ITEM
        cart_pos = _between(np.minimum(item_seen, pos), pos, rng.random(k))
        return Rows.concat([Rows.of(sess[carted], cart_pos[carted], CART, product[carted]), Rows.of(sess, pos, PURCHASE, product)])

    def _unbought_carts(self, browse: Browse, signal: np.ndarray) -> tuple[Rows, Rows]:
        """Carts of a viewed product, in buying and non-buying sessions alike, and (by profile) their removals."""
        rng, n = self.rng, len(browse.views)
        carting = np.flatnonzero(rng.random(n) < _sigmoid(0.8 * signal - CART_INTERCEPT))
        view = browse.random_view(carting, rng.random(len(carting)))
        count = np.minimum(rng.geometric(1.0 - CART_REPEAT, len(carting)), MAX_CART_EVENTS)
        sess, at = np.repeat(carting, count), np.repeat(view, count)
        # The first cart follows the view; repeats come at any later view.
        repeat = np.ones(len(sess), dtype=bool)
        repeat[np.cumsum(count) - count] = False
        last = browse.views[sess] - 1
        pos = np.where(repeat, _between(browse.pos[at], last, rng.random(len(sess))), browse.pos[at])
        carts = Rows.of(sess, pos, CART, browse.product[at])
        removed = rng.random(len(carting)) < self.p.profile.remove_per_cart
        r_view = view[removed]
        r_pos = _between(browse.pos[r_view], browse.views[carting[removed]] - 1, rng.random(int(removed.sum())))
        return carts, Rows.of(carting[removed], r_pos, REMOVE, browse.product[r_view])

    def _assemble(self, rows: Rows, users: np.ndarray, start: np.ndarray, pace: np.ndarray) -> Events:
        """Order the rows, copy a few (exact duplicates), and give them times."""
        rng, n = self.rng, len(users)
        key = (self.next_session + rows.sess) * 1024 + rows.pos * 4 + _OFFSET[rows.etype]
        order = np.argsort(key, kind="stable")
        dup = rng.random(len(key)) < DUPLICATE_RATE
        take = np.repeat(order, 1 + dup[order])
        sess, etype, product, key = rows.sess[take], rows.etype[take], rows.product[take], key[take]
        same_as_previous = np.zeros(len(take), dtype=bool)
        same_as_previous[1:] = take[1:] == take[:-1]
        # One order's items share a second; so do a row and its copy.
        same_second = same_as_previous.copy()
        same_second[1:] |= (etype[1:] == PURCHASE) & (etype[:-1] == PURCHASE) & (key[1:] == key[:-1])

        gap = np.round(pace[sess] * np.exp(np.log(_GAP_MEDIAN[etype]) + _GAP_SIGMA[etype] * rng.standard_normal(len(key)))).astype(np.int64)
        new_session = np.ones(len(key), dtype=bool)
        new_session[1:] = sess[1:] != sess[:-1]
        gap[new_session | same_second] = 0
        csum = np.cumsum(gap)
        sess_first = np.flatnonzero(new_session)
        offset = csum - np.repeat(csum[sess_first], np.diff(np.append(sess_first, len(key))))
        time = start[sess] + offset
        self.next_session += n
        return Events(time, key, etype, product, users[sess], self.next_session - n + sess)

    # -- windows -----------------------------------------------------------------------------------

    def windows(self) -> list[tuple[int, int, int]]:
        """(t0, t1, event budget) per window; budgets follow the traffic curve and sum to ``events``."""
        p = self.p
        t_start = int(p.start.timestamp())
        hours = 24 * p.days
        per_hour = max(1, math.ceil(p.events / hours / WINDOW_EVENTS))
        n_win = hours * per_hour
        step = 3600 // per_hour
        bounds = [t_start + i * step for i in range(n_win)] + [t_start + hours * 3600]
        weight = np.empty(n_win)
        for i in range(n_win):
            moment = datetime.fromtimestamp(bounds[i], tz=p.start.tzinfo)
            w = float(hour_weight(moment.hour + moment.minute / 60 + step / 7200))
            if p.spike_day is not None and moment.date() == p.spike_day:
                w *= p.spike_factor
            weight[i] = w
        cum = np.round(np.cumsum(weight) / weight.sum() * p.events).astype(np.int64)
        budgets = np.diff(np.concatenate([[0], cum]))
        return [(bounds[i], bounds[i + 1], int(budgets[i])) for i in range(n_win)]

    def window_events(self, t0: int, t1: int, budget: int) -> Events:
        """Exactly ``budget`` events of sessions starting in [t0, t1) (the last session may be cut short)."""
        parts: list[Events] = []
        left = budget
        while left > 0:
            batch = self.sessions(max(1, math.ceil(left / EVENTS_PER_SESSION * 1.05)), t0, t1)
            take = batch.take(np.arange(min(left, len(batch))))
            parts.append(take)
            left -= len(take)
        if not parts:
            return Events.empty()
        return Events.concat(parts)

    def __iter__(self) -> Iterator[Events]:
        """Time-sorted chunks: each window plus the spill-over of earlier windows' sessions."""
        carry: Events | None = None
        wins = self.windows()
        for i, (t0, t1, budget) in enumerate(wins):
            batch = self.window_events(t0, t1, budget)
            if carry is not None:
                batch = Events.concat([carry, batch])
            last = i == len(wins) - 1
            ready = np.ones(len(batch), dtype=bool) if last else batch.time < t1
            out = batch.take(np.flatnonzero(ready))
            carry = batch.take(np.flatnonzero(~ready))
            yield out.take(np.lexsort((out.key, out.time)))


def iter_csv(params: Params, header: bool = False) -> Iterator[tuple[str, int]]:
    """The CSV text in chunks, with the number of events in each."""
    gen = Generator(params)
    cat = gen.catalog
    n_null = min(params.events, max(MIN_NULL_SESSIONS, round(params.events * NULL_SESSION_PER_EVENT)))
    null_at = set(np.random.default_rng([params.seed, 1]).choice(params.events, size=n_null, replace=False).tolist())
    written = 0
    if header:
        yield ",".join(CSV_COLUMNS) + "\n", 0
    for ev in gen:
        if not len(ev):
            continue
        uniq_t, t_inv = np.unique(ev.time, return_inverse=True)
        t_text = [s.replace("T", " ") + " UTC" for s in np.datetime_as_string(uniq_t.astype("datetime64[s]")).tolist()]
        uniq_s, s_inv = np.unique(ev.session, return_inverse=True)
        s_text = gen.session_ids(uniq_s)
        uids = gen.user_ids(ev.user).tolist()
        lines = [
            f"{t_text[ti]},{EVENT_NAMES[et]},{cat.product_text[pr]},{uid},{s_text[si]}"
            for ti, et, pr, uid, si in zip(t_inv.tolist(), ev.etype.tolist(), ev.product.tolist(), uids, s_inv.tolist(), strict=True)
        ]
        for j in [k - written for k in null_at if written <= k < written + len(lines)]:
            lines[j] = lines[j][: lines[j].rfind(",") + 1]
        written += len(lines)
        yield "\n".join(lines) + "\n", len(lines)


def generate(
    out: Path,
    events: int,
    start: date,
    days: int,
    seed: int,
    header: bool = False,
    spike_day: date | None = None,
    spike_factor: float = 2.0,
    progress: bool = True,
    profile: str = "electronics",
) -> int:
    """Write the file (gzip when ``out`` ends in .gz) and return the number of events.

    ``profile`` is a key of PROFILES: "electronics" (the default, no remove_from_cart) or "cosmetics"."""
    if events < 1 or days < 1:
        raise ValueError("events and days must be positive")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end = start + timedelta(days=days)
    if spike_day is None:
        spike_day = SPIKE_DAY if start <= SPIKE_DAY < end else start + timedelta(days=days // 2)
    params = Params(events, start_dt, days, seed, spike_day if start <= spike_day < end else None, spike_factor, PROFILES[profile])
    out.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    count = 0
    with (
        open(out, "wb") as raw,
        _writer(raw, out.name.endswith(".gz")) as fh,
        tqdm(total=events, unit="ev", unit_scale=True, disable=not progress, desc=out.name) as bar,
    ):
        for text, n in iter_csv(params, header=header):
            fh.write(text.encode("utf-8"))
            count += n
            bar.update(n)
    return count


def _writer(raw: IO[bytes], compress: bool) -> IO[bytes]:
    # mtime=0 and no name in the header: the same arguments give the same bytes.
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) if compress else _NoClose(raw)


class _NoClose:
    """Context wrapper that leaves closing to the outer ``open``."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh

    def write(self, data: bytes) -> int:
        return self.fh.write(data)

    def __enter__(self) -> _NoClose:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.flush()


app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def cli(
    out: Path = typer.Option(..., "--out", "-o", help="Output file; gzip-compressed when it ends in .gz."),
    events: int = typer.Option(1_000_000, help="Exact number of events (rows) to write."),
    start: datetime = typer.Option("2019-11-01", formats=["%Y-%m-%d"], help="First day (UTC)."),
    days: int = typer.Option(7, help="Number of days the events span."),
    seed: int = typer.Option(42, help="Random seed; the same seed and arguments give a byte-identical file."),
    header: bool = typer.Option(False, "--header/--no-header", help="Write a header line (REES46 files have none)."),
    spike_day: datetime | None = typer.Option(
        None, formats=["%Y-%m-%d"], help="Day with extra traffic (default 2019-11-11 when in range, else the middle day)."
    ),
    spike_factor: float = typer.Option(2.0, help="Traffic multiplier of the spike day (1 disables it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    profile: str = typer.Option(
        "electronics", help="Store profile: electronics (REES46's multi-category store, no remove_from_cart) or cosmetics (adds removals)."
    ),
) -> None:
    """Write a synthetic REES46-format clickstream file."""
    if profile not in PROFILES:
        raise typer.BadParameter(f"choose one of {', '.join(PROFILES)}", param_hint="--profile")
    n = generate(
        out,
        events,
        start.date(),
        days,
        seed,
        header=header,
        spike_day=spike_day.date() if spike_day else None,
        spike_factor=spike_factor,
        progress=not quiet,
        profile=profile,
    )
    typer.echo(f"wrote {n:,} events to {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
