"""river ``reco.BiasedMF`` trained on implicit feedback, with deterministic state.

Implicit feedback has only positives, so each purchased product is a target
1 and ``negatives`` products drawn from the last ``sample_window`` purchases
(popular products are drawn more often) are targets 0, unless the customer
ever ordered them. A cancelled product gets a target 0, and a rating of s
stars a target (s - 1) / 4. Plain online SGD gives recent events the last
word, and this replaces a decay in event time.

Draws come from a counter-based generator (SplitMix64 of seed and counter),
and new latent vectors from ``CountingNormal``, so the state is the weights
plus two counters: a replay in the same order gives the same weights, and
``export`` / ``restore`` resume exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from river import optim, reco, stats

MASK_64 = (1 << 64) - 1


def splitmix64(value: int) -> int:
    """Hash ``value`` with the SplitMix64 finaliser, a well-mixed 64-bit hash."""
    value = (value + 0x9E3779B97F4A7C15) & MASK_64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK_64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK_64
    return value ^ (value >> 31)


class CountingNormal(optim.base.Initializer):
    """Normal initial weights whose n-th draw depends only on the seed and n."""

    def __init__(self, sigma: float = 0.1, seed: int = 7):
        self.sigma = sigma
        self.seed = seed
        self.draws = 0

    def __call__(self, shape: int = 1):
        generator = np.random.default_rng([self.seed, self.draws])
        self.draws += 1
        values = generator.normal(0.0, self.sigma, size=shape)
        return values if shape != 1 else float(values[0])


class ImplicitFactorisation:
    """Biased matrix factorisation of customer and product indices, learned one event at a time."""

    def __init__(self, factors: int = 16, negatives: int = 4, learning_rate: float = 0.05, l2: float = 0.001,
                 sample_window: int = 10_000, seed: int = 7):
        self.factors = factors
        self.negatives = negatives
        self.sample_window = sample_window
        self.seed = seed
        self.initializer = CountingNormal(sigma=0.1, seed=seed)
        self.model = reco.BiasedMF(
            n_factors=factors,
            bias_optimizer=optim.SGD(learning_rate),
            latent_optimizer=optim.SGD(learning_rate),
            l2_latent=l2,
            latent_initializer=self.initializer,
            seed=seed,
        )
        self.recent = np.zeros(sample_window, dtype=np.int32)  # ring buffer of purchased product indices
        self.purchases = 0  # purchases seen; the ring buffer's write position is purchases % sample_window
        self.draws = 0  # negative-sample draws so far, the counter of the generator

    def _draw(self) -> int:
        filled = min(self.purchases, self.sample_window)
        value = splitmix64((self.seed << 32) ^ self.draws)
        self.draws += 1
        return int(self.recent[value % filled])

    def learn_purchase(self, customer: int, product: int, has_ordered: Callable[[int], bool]) -> None:
        """Learn one purchased product and its sampled negatives; ``has_ordered(product)`` protects known products."""
        self.model.learn_one(customer, product, 1.0)
        if self.purchases:
            for _ in range(self.negatives):
                negative = self._draw()
                if negative != product and not has_ordered(negative):
                    self.model.learn_one(customer, negative, 0.0)
        self.recent[self.purchases % self.sample_window] = product
        self.purchases += 1

    def learn_target(self, customer: int, product: int, target: float) -> None:
        """Learn one explicit target: 0 for a cancellation, (stars - 1) / 4 for a rating."""
        self.model.learn_one(customer, product, target)

    def scores(self, customer: int, product_count: int) -> np.ndarray:
        """Predicted affinity of the customer for every product index; products never seen score 0.

        Reads the weights without river's ``predict_one``, which would add
        weights for unseen keys and so change the state.
        """
        model = self.model
        biases = np.zeros(product_count)
        latents = np.zeros((product_count, self.factors))
        if model.i_latents:
            keys = np.fromiter(model.i_latents.keys(), dtype=np.int64, count=len(model.i_latents))
            latents[keys] = np.stack(list(model.i_latents.values()))
        if model.i_biases:
            keys = np.fromiter(model.i_biases.keys(), dtype=np.int64, count=len(model.i_biases))
            biases[keys] = np.fromiter(model.i_biases.values(), dtype=np.float64, count=len(keys))
        user = model.u_latents.get(customer)
        if user is None:
            return biases
        return latents @ user + biases

    def export(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        """Return the header fields and arrays that ``restore`` needs, in a deterministic order."""
        model = self.model

        def keyed_vectors(table: dict) -> tuple[np.ndarray, np.ndarray]:
            keys = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
            values = np.stack(list(table.values())) if table else np.zeros((0, self.factors))
            return keys, values

        def keyed_scalars(table: dict) -> tuple[np.ndarray, np.ndarray]:
            keys = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
            return keys, np.fromiter(table.values(), dtype=np.float64, count=len(table))

        arrays = {f"{prefix}.recent": self.recent}
        for name in ("u_latents", "i_latents"):
            arrays[f"{prefix}.{name}.keys"], arrays[f"{prefix}.{name}.values"] = keyed_vectors(getattr(model, name))
        for name in ("u_biases", "i_biases"):
            arrays[f"{prefix}.{name}.keys"], arrays[f"{prefix}.{name}.values"] = keyed_scalars(getattr(model, name))
        header = {
            "purchases": self.purchases,
            "draws": self.draws,
            "initializer_draws": self.initializer.draws,
            "mean_count": model.global_mean.n,
            "mean": model.global_mean.get(),
            "optimizer_iterations": [optimizer.n_iterations for optimizer in self._optimizers()],
        }
        return header, arrays

    def restore(self, prefix: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
        """Load what ``export`` returned into this freshly built instance (same settings)."""
        model = self.model
        self.recent = arrays[f"{prefix}.recent"].astype(np.int32)
        if len(self.recent) != self.sample_window:
            raise ValueError(f"factorisation sample window in the state is {len(self.recent)}, "
                             f"expected {self.sample_window}")
        for name in ("u_latents", "i_latents"):
            table = getattr(model, name)
            keys = arrays[f"{prefix}.{name}.keys"].tolist()
            values = arrays[f"{prefix}.{name}.values"]
            for key, row in zip(keys, values):
                table[key] = row.astype(np.float64).copy()
        for name in ("u_biases", "i_biases"):
            table = getattr(model, name)
            keys = arrays[f"{prefix}.{name}.keys"].tolist()
            for key, value in zip(keys, arrays[f"{prefix}.{name}.values"].tolist()):
                table[key] = value
        self.purchases = header["purchases"]
        self.draws = header["draws"]
        self.initializer.draws = header["initializer_draws"]
        model.global_mean = stats.Mean._from_state(header["mean_count"], header["mean"])
        for optimizer, iterations in zip(self._optimizers(), header["optimizer_iterations"], strict=True):
            optimizer.n_iterations = iterations

    def _optimizers(self) -> list:
        model = self.model
        return [model.u_bias_optimizer, model.i_bias_optimizer, model.u_latent_optimizer, model.i_latent_optimizer]
