"""Seeded synthetic REES46 clickstream, calibrated to the published figures.

The real month files are too big to ship and the 683-row sample is too small to
learn from, so the pipeline and the models are exercised on generated data that
looks like REES46 where it matters (event mix, session lengths, null rates,
category shares, prices, duplicates, a Singles' Day spike) and carries a
signal a model can find:

* every user has a latent propensity to buy, kept across sessions, so a user's
  history predicts their next purchase;
* every user has one to three favourite categories; most sessions stay in one
  of them, so later sessions' categories follow from earlier ones;
* sessions that dwell on one product (repeat views), are longer, or hold a cart
  convert more; popular products are viewed (and bought) more; smartphones
  convert best, as in the real data.

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

# --- calibration targets (see tests/data/README.md) -----------------------------------------------

EMPTY_CODE_SHARE = 0.33  # rows with an empty category_code
DUPLICATE_RATE = 0.005  # fully identical duplicate rows
NULL_SESSION_PER_EVENT = 10 / 67_501_979  # November has 10 such rows; we always make a few
MIN_NULL_SESSIONS = 3
SPIKE_DAY = date(2019, 11, 11)  # Singles' Day: about twice the daily traffic
MAX_VIEWS_PER_SESSION = 150
WINDOW_EVENTS = 100_000
# Intercepts of the intent model, tuned so the event mix matches November (94.2 / 4.5 / 1.4 %).
BUY_INTERCEPT = 5.2
CART_INTERCEPT = 3.4
EXTRA_CART_INTERCEPT = 4.6
REMOVE_AFTER_CART = 0.07
VIEWS_MEAN = 3.2  # upper bound of events generated per time window (memory)

# Leaf categories: (category_code, share of all rows, purchase log-odds bonus, price level z).
# Shares per top level follow the published sample: electronics 36 %, appliances 12 %,
# computers 6 %, furniture/apparel/auto 3 % each, then the small ones; the rest is empty.
LEAF_CATEGORIES: tuple[tuple[str, float, float, float], ...] = (
    ("electronics.smartphone", 0.245, 0.3, 0.3),
    ("electronics.audio.headphone", 0.035, -0.1, -0.6),
    ("electronics.video.tv", 0.030, 0.0, 0.8),
    ("electronics.clocks", 0.020, -0.1, 0.2),
    ("electronics.tablet", 0.010, 0.0, 0.5),
    ("electronics.audio.acoustic", 0.008, -0.2, 0.0),
    ("electronics.telephone", 0.007, -0.1, -1.0),
    ("electronics.camera.video", 0.005, -0.3, 0.6),
    ("appliances.kitchen.washer", 0.030, 0.0, 0.7),
    ("appliances.kitchen.refrigerators", 0.028, 0.0, 1.0),
    ("appliances.environment.vacuum", 0.025, 0.0, 0.0),
    ("appliances.kitchen.microwave", 0.010, 0.0, -0.3),
    ("appliances.iron", 0.009, 0.0, -0.8),
    ("appliances.environment.water_heater", 0.008, -0.1, 0.1),
    ("appliances.sewing_machine", 0.005, -0.2, 0.2),
    ("appliances.personal.massager", 0.005, -0.3, -0.5),
    ("computers.notebook", 0.035, 0.1, 1.2),
    ("computers.desktop", 0.010, -0.2, 1.3),
    ("computers.peripherals.printer", 0.008, -0.2, -0.1),
    ("computers.components.videocards", 0.007, -0.2, 0.9),
    ("furniture.living_room.sofa", 0.012, -0.5, 0.6),
    ("furniture.bedroom.bed", 0.010, -0.5, 0.5),
    ("furniture.kitchen.table", 0.008, -0.5, -0.2),
    ("apparel.shoes", 0.015, -0.4, -0.7),
    ("apparel.shoes.keds", 0.010, -0.4, -0.8),
    ("apparel.costume", 0.005, -0.5, -0.9),
    ("auto.accessories.player", 0.012, -0.3, -0.6),
    ("auto.accessories.videoregister", 0.018, -0.3, -0.4),
    ("construction.tools.drill", 0.008, -0.3, -0.2),
    ("construction.tools.light", 0.004, -0.4, -1.2),
    ("kids.toys", 0.006, -0.4, -1.0),
    ("kids.carriage", 0.004, -0.4, 0.2),
    ("sport.bicycle", 0.004, -0.4, 0.3),
    ("sport.trainer", 0.002, -0.5, 0.4),
    ("accessories.bag", 0.004, -0.5, -0.9),
    ("medicine.tools.tonometer", 0.002, -0.3, -0.7),
    ("country_yard.lawn_mower", 0.002, -0.4, 0.3),
    ("stationery.cartrige", 0.001, -0.5, -1.1),
)
N_EMPTY_CODE_CATEGORIES = 120

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

# Diurnal traffic shape by UTC hour (the shop is in UTC+3: quiet at night, busy in the afternoon).
HOURLY_TRAFFIC = np.array([4, 5, 6, 7, 8, 9, 10, 10, 10, 10, 10, 10, 10, 11, 12, 13, 14, 14, 13, 11, 8, 6, 5, 4], dtype=float)
# Price quantiles of the November rows (p50 164.61, p90 758.24, p99 1681.90), interpolated in log space.
PRICE_QUANTILES = np.array([0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99, 1.0])
PRICE_VALUES = np.array([0.9, 17.0, 52.0, 160.0, 400.0, 800.0, 1780.0, 2700.0])
ZERO_PRICE_PRODUCTS = 0.004  # ~188 k of 67.5 M rows have price <= 0
NEGATIVE_PRICE_PRODUCTS = 0.0002

EVENT_NAMES: tuple[str, ...] = ("view", "cart", "purchase", "remove_from_cart")
VIEW, CART, PURCHASE, REMOVE = 0, 1, 2, 3
# Order of events anchored at the same view: the view, then a cart, then a purchase, then a removal.
_OFFSET = np.array([0, 1, 2, 3], dtype=np.int64)
# Median seconds before an event of each type, and the spread (lognormal sigma).
_GAP_MEDIAN = np.array([45.0, 20.0, 60.0, 30.0])
_GAP_SIGMA = np.array([1.1, 0.8, 0.9, 0.8])

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
    level = [c[3] for c in LEAF_CATEGORIES]
    known = sum(shares)
    empty_w = 1.0 / np.arange(1, N_EMPTY_CODE_CATEGORIES + 1) ** 0.8
    empty_w = empty_w / empty_w.sum() * EMPTY_CODE_SHARE
    share = np.concatenate([np.array(shares) / known * (1 - EMPTY_CODE_SHARE), empty_w])
    codes += [""] * N_EMPTY_CODE_CATEGORIES
    bonus_arr = np.concatenate([bonus, np.full(N_EMPTY_CODE_CATEGORIES, -0.3)])
    level_arr = np.concatenate([level, rng.normal(0, 0.8, N_EMPTY_CODE_CATEGORIES)])
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
    # Price: a per-product quantile, correlated with the category's price level, keeps the overall quantiles.
    z = 0.55 * level_arr[product_cat] + math.sqrt(1 - 0.55**2) * rng.standard_normal(n)
    q = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    price = np.exp(np.interp(q, PRICE_QUANTILES, np.log(PRICE_VALUES)))
    special = rng.random(n)
    price = np.where(special < ZERO_PRICE_PRODUCTS, 0.0, price)
    price = np.where(special > 1 - NEGATIVE_PRICE_PRODUCTS, -np.round(rng.uniform(1, 50, n), 2), price)
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
    )


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (Abramowitz-Stegun 7.1.26; plenty for shaping prices)."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-x * x)
    return sign * y


def _brands(rng: np.random.Generator, codes: list[str]) -> list[str]:
    """Brand per product: known makers for known categories; empty for about 14 % of rows."""
    out: list[str] = []
    u = rng.random(len(codes))
    pick = rng.random(len(codes))
    for code, ui, pi in zip(codes, u.tolist(), pick.tolist(), strict=True):
        if ui < (0.09 if code else 0.30):
            out.append("")
            continue
        table = BRANDS.get(code) or BRANDS.get(code.split(".")[0])
        if table is None or pi > 0.9:
            out.append(GENERIC_BRANDS[int(pi * 1e6) % len(GENERIC_BRANDS)])
            continue
        names, weights = zip(*table, strict=True)
        cdf = np.cumsum(weights) / sum(weights)
        out.append(names[min(int(np.searchsorted(cdf, pi / 0.9)), len(names) - 1)])
    return out


@dataclass(frozen=True)
class Params:
    events: int
    start: datetime
    days: int
    seed: int
    spike_day: date | None
    spike_factor: float


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


_FIELDS = ("time", "key", "etype", "product", "user", "session")


class Generator:
    """Generates a time-ordered event stream window by window."""

    def __init__(self, params: Params) -> None:
        self.p = params
        self.rng = np.random.default_rng(params.seed)
        self.salt = int(_mix(np.array([params.seed], dtype=np.uint64))[0])
        n_products = int(min(300_000, max(2_000, params.events // 40)))
        self.catalog = build_catalog(self.rng, n_products)
        sessions = params.events / 3.4
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
        """``n`` sessions starting in [t0, t1): views, carts, purchases, removals, duplicates."""
        rng, cat = self.rng, self.catalog
        users = np.floor(self.n_users * rng.random(n) ** 1.6).astype(np.int64)
        propensity, fav = self._user_traits(users)
        main = np.where(rng.random(n) < 0.8, fav, cat.draw_categories(rng.random(n)))
        views = np.minimum(1 + rng.negative_binomial(0.6, 0.6 / (0.6 + VIEWS_MEAN - 1), n), MAX_VIEWS_PER_SESSION)
        total = int(views.sum())
        first = np.concatenate([[0], np.cumsum(views)[:-1]])
        sess = np.repeat(np.arange(n), views)
        pos = np.arange(total) - first[sess]

        # Views: mostly the session's category; often the same product again (dwelling).
        repeat = (rng.random(total) < 0.4) & (pos > 0)
        in_main = rng.random(total) < 0.8
        view_cat = np.where(in_main, main[sess], cat.draw_categories(rng.random(total)))
        fresh = cat.draw_products(view_cat, rng.random(total))
        run_start = np.maximum.accumulate(np.where(repeat, 0, np.arange(total)))
        product = fresh[run_start]
        run_len = np.bincount(run_start, minlength=total)[run_start]
        # The session's target: its longest run (earliest on ties).
        score = run_len * 1024 + (1023 - (run_start - first[sess]))
        best = np.maximum.reduceat(score, first)
        longest = best // 1024
        target_pos = 1023 - best % 1024
        target_end = target_pos + longest - 1
        target_product = product[first + target_pos]
        main_views = np.add.reduceat((cat.product_cat[product] == main[sess]).astype(np.int64), first)

        # Intent: the learnable signal. Propensity carries over sessions; dwelling and length help.
        signal = (
            1.3 * propensity
            + 0.55 * np.minimum(longest - 1, 6)
            + 0.35 * np.log(views)
            + 0.15 * np.log1p(main_views)
            + cat.category_bonus[cat.product_cat[target_product]]
            + 0.3 * np.log(np.maximum(cat.product_pop[target_product], 0.05))
        )
        buy = rng.random(n) < _sigmoid(signal - BUY_INTERCEPT)
        cart_before_buy = buy & (rng.random(n) < 0.6)
        cart_only = ~buy & (rng.random(n) < _sigmoid(0.8 * signal - CART_INTERCEPT))
        carted = cart_before_buy | cart_only
        cart_pos = target_pos + np.floor(rng.random(n) * longest).astype(np.int64)
        extra_cart = (views > 1) & (rng.random(n) < _sigmoid(0.6 * signal - EXTRA_CART_INTERCEPT))
        extra_pos = np.floor(rng.random(n) * views).astype(np.int64)
        removed = carted & ~buy & (rng.random(n) < REMOVE_AFTER_CART)

        idx = np.arange(n)
        extra_sess = np.concatenate([idx[carted], idx[buy], idx[removed], idx[extra_cart]])
        extra_pos_all = np.concatenate([cart_pos[carted], target_end[buy], cart_pos[removed], extra_pos[extra_cart]])
        extra_type = np.concatenate(
            [
                np.full(int(carted.sum()), CART),
                np.full(int(buy.sum()), PURCHASE),
                np.full(int(removed.sum()), REMOVE),
                np.full(int(extra_cart.sum()), CART),
            ]
        ).astype(np.int8)
        extra_product = np.concatenate(
            [target_product[carted], target_product[buy], target_product[removed], product[first[extra_cart] + extra_pos[extra_cart]]]
        )

        all_sess = np.concatenate([sess, extra_sess])
        all_pos = np.concatenate([pos, extra_pos_all])
        all_type = np.concatenate([np.zeros(total, dtype=np.int8), extra_type])
        all_product = np.concatenate([product, extra_product])
        session_no = self.next_session + all_sess
        key = session_no * 1024 + all_pos * 4 + _OFFSET[all_type]
        order = np.argsort(key, kind="stable")
        all_sess, all_type, all_product, key = all_sess[order], all_type[order], all_product[order], key[order]

        dup = rng.random(len(key)) < DUPLICATE_RATE
        rep = np.repeat(np.arange(len(key)), 1 + dup)
        is_dup_copy = np.zeros(len(rep), dtype=bool)
        is_dup_copy[1:] = rep[1:] == rep[:-1]
        all_sess, all_type, all_product, key = all_sess[rep], all_type[rep], all_product[rep], key[rep]

        # Times: session start plus lognormal gaps; duplicates share the time of their original.
        start = rng.integers(t0, t1, n)
        gap = np.round(np.exp(np.log(_GAP_MEDIAN[all_type]) + _GAP_SIGMA[all_type] * rng.standard_normal(len(key)))).astype(np.int64)
        new_session = np.ones(len(key), dtype=bool)
        new_session[1:] = all_sess[1:] != all_sess[:-1]
        gap[new_session | is_dup_copy] = 0
        csum = np.cumsum(gap)
        sess_first = np.flatnonzero(new_session)
        offset = csum - np.repeat(csum[sess_first], np.diff(np.append(sess_first, len(key))))
        time = start[all_sess] + offset
        self.next_session += n
        return Events(time, key, all_type, all_product, users[all_sess], self.next_session - n + all_sess)

    # -- windows -----------------------------------------------------------------------------------

    def windows(self) -> list[tuple[int, int, int]]:
        """(t0, t1, event budget) per window; budgets follow the traffic shape and sum to ``events``."""
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
            w = HOURLY_TRAFFIC[moment.hour]
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
            batch = self.sessions(max(1, math.ceil(left / 3.4 * 1.05)), t0, t1)
            take = batch.take(np.arange(min(left, len(batch))))
            parts.append(take)
            left -= len(take)
        return Events.concat(parts) if parts else self.sessions(0, t0, t1)

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
) -> int:
    """Write the file (gzip when ``out`` ends in .gz) and return the number of events."""
    if events < 1 or days < 1:
        raise ValueError("events and days must be positive")
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end = start + timedelta(days=days)
    if spike_day is None:
        spike_day = SPIKE_DAY if start <= SPIKE_DAY < end else start + timedelta(days=days // 2)
    params = Params(events, start_dt, days, seed, spike_day if start <= spike_day < end else None, spike_factor)
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
) -> None:
    """Write a synthetic REES46-format clickstream file."""
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
    )
    typer.echo(f"wrote {n:,} events to {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
