from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Hypothesis: no per-example deadline (shared 2-core machines are noisy); a CI profile
# with fewer examples keeps the suite well inside its time budget.
settings.register_profile(
    "dev", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=40,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
