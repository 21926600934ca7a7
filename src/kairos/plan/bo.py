"""RIBBON's search: Bayesian optimisation over integer configurations within budget.

A Gaussian process (scikit-learn's ``GaussianProcessRegressor``, Matern 5/2 kernel
plus white noise, on counts scaled by each type's maximum count) models QPS as a
function of the configuration; the next configuration to simulate is the one of
highest expected improvement among the candidates (every configuration within
budget when there are at most ``POOL_LIMIT``, else a random sample of them).
scikit-learn is optional (extra ``plan-bo``).
"""

from __future__ import annotations

import warnings

import numpy as np

from kairos.errors import KairosInputError
from kairos.plan.space import PlanProblem, count_configurations, enumerate_configurations

POOL_LIMIT = 200_000


def candidate_pool(problem: PlanProblem, rng: np.random.Generator, sample: int = 20_000) -> np.ndarray:
    """Configurations within budget: all of them, or a random sample for huge spaces."""
    if count_configurations(problem.prices, problem.budget) <= POOL_LIMIT:
        return enumerate_configurations(problem.prices, problem.budget)
    T = problem.T
    rows = np.zeros((sample, T), dtype=np.int64)
    for r in range(sample):  # random type order, uniform count of each within what is left
        left = problem.budget
        for t in rng.permutation(T):
            k = int(rng.integers(0, int(np.floor((left + 1e-9) / problem.prices[t])) + 1))
            rows[r, t] = k
            left -= k * problem.prices[t]
    rows = np.unique(rows[rows.sum(axis=1) > 0], axis=0)
    return rows


def expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float, xi: float = 0.01) -> np.ndarray:
    from scipy.stats import norm

    sigma = np.maximum(sigma, 1e-12)
    imp = mu - best - xi * abs(best)
    z = imp / sigma
    return imp * norm.cdf(z) + sigma * norm.pdf(z)


def bayes_opt(problem: PlanProblem, objective, evals: int, seed: int = 0, n_init: int = 3):
    """Maximise ``objective(config)`` with at most ``evals`` evaluations; returns (counts, value)."""
    try:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    except ImportError:
        raise KairosInputError("--method ribbon needs scikit-learn: pip install 'kairos-serve[plan-bo]'") from None
    rng = np.random.default_rng(seed)
    pool = candidate_pool(problem, rng)
    scale = np.maximum(problem.max_counts(), 1).astype(float)
    Z = pool / scale
    done: list[int] = []
    ys: list[float] = []
    first = rng.choice(len(pool), size=min(n_init, len(pool), evals), replace=False)
    for i in first:
        done.append(int(i))
        ys.append(objective(problem.to_config(pool[i])))
    while len(done) < min(evals, len(pool)):
        y = np.asarray(ys)
        kernel = ConstantKernel(1.0) * Matern(
            length_scale=np.full(problem.T, 0.3), nu=2.5, length_scale_bounds=(1e-2, 1e2)
        ) + WhiteKernel(1e-3, (1e-6, 1e-1))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed, n_restarts_optimizer=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(Z[done], y)
        mu, sd = gp.predict(Z, return_std=True)
        ei = expected_improvement(mu, sd, float(y.max()))
        ei[done] = -np.inf
        i = int(np.argmax(ei))
        done.append(i)
        ys.append(objective(problem.to_config(pool[i])))
    j = int(np.argmax(ys))
    return pool[done[j]], float(ys[j])
