"""Time split of prediction rows into train / validation / test, whole sessions at a time.

A random row split would put points of one session on both sides and let the
model peek at the future; here each session goes where its *first* prediction
time falls, and the later days are held out: validation picks the model, the
final test window is only used once the choice is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


class SplitError(ValueError):
    """The data cannot be split as asked (too few days or sessions)."""


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    mode: str  # "days" or "time" (quantiles of session start when there are too few days)
    boundaries: tuple[str, str]  # first validation / first test instant, as text

    def describe(self) -> dict[str, object]:
        return {
            "split_mode": self.mode,
            "split_val_start": self.boundaries[0],
            "split_test_start": self.boundaries[1],
            "rows_train": len(self.train),
            "rows_val": len(self.val),
            "rows_test": len(self.test),
            "sessions_train": self.train["session_id"].nunique(),
            "sessions_val": self.val["session_id"].nunique(),
            "sessions_test": self.test["session_id"].nunique(),
        }


def time_split(frame: pd.DataFrame, val_frac: float = 0.2, test_frac: float = 0.2) -> Split:
    """Split by the session's first ``prediction_time``: last ``test_frac`` of days = test, the ``val_frac`` before = validation.

    With three or more distinct days the cut is on whole days (the issue's wording); with
    fewer it falls back to quantiles of session start time, so a small sample still splits.
    """
    if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise SplitError(f"val_frac={val_frac} and test_frac={test_frac} must be in (0, 1) and sum to less than 1")
    session_start = frame.groupby("session_id", sort=False)["prediction_time"].transform("min")
    days = session_start.dt.floor("D")
    unique_days = np.sort(days.unique())
    if len(unique_days) >= 3:
        n = len(unique_days)
        n_test = max(1, math.ceil(n * test_frac))
        n_val = max(1, math.ceil(n * val_frac))
        if n_test + n_val >= n:
            raise SplitError(f"only {n} days of data: cannot hold out {n_val} validation and {n_test} test days and keep any for training")
        val_start, test_start = pd.Timestamp(unique_days[n - n_test - n_val]), pd.Timestamp(unique_days[n - n_test])
        key, mode = days, "days"
    else:
        starts = frame.groupby("session_id", sort=False)["prediction_time"].min().sort_values()
        if len(starts) < 3:
            raise SplitError(f"only {len(starts)} sessions: need at least 3 to split by time")
        val_start = starts.iloc[int(len(starts) * (1 - test_frac - val_frac))]
        test_start = starts.iloc[int(len(starts) * (1 - test_frac))]
        key, mode = session_start, "time"
    train = frame[key < val_start]
    val = frame[(key >= val_start) & (key < test_start)]
    test = frame[key >= test_start]
    for name, part in (("train", train), ("validation", val), ("test", test)):
        if len(part) == 0:
            raise SplitError(f"the {name} window is empty (split at {val_start} / {test_start}); adjust --val-frac / --test-frac")
    return Split(
        train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True), mode, (str(val_start), str(test_start))
    )
