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

import time
from array import array
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
        self.deferred = False  # see _step
        self._reset_pending()
        self.draws = 0  # negative-sample draws so far, the counter of the generator

    def _draw(self) -> int:
        filled = min(self.purchases, self.sample_window)
        value = splitmix64((self.seed << 32) ^ self.draws)
        self.draws += 1
        return int(self.recent[value % filled])

    def learn_purchase(self, customer: int, product: int, has_ordered: Callable[[int], bool]) -> None:
        """Learn one purchased product and its sampled negatives; ``has_ordered(product)`` protects known products.

        The negatives are drawn and checked now, because they depend on what
        the customer has ordered so far. Only the SGD steps may be deferred.
        """
        self._step(customer, product, 1.0)
        if self.purchases:
            for _ in range(self.negatives):
                negative = self._draw()
                if negative != product and not has_ordered(negative):
                    self._step(customer, negative, 0.0)
        self.recent[self.purchases % self.sample_window] = product
        self.purchases += 1

    def learn_target(self, customer: int, product: int, target: float) -> None:
        """Learn one explicit target: 0 for a cancellation, (stars - 1) / 4 for a rating."""
        self._step(customer, product, target)

    # Deferred SGD steps. The stream worker sets ``deferred`` so that a purchase reaches the
    # buy-again lists (which do not read the factorisation) without waiting for river's SGD steps,
    # about 18 microseconds each and five per purchased product. The steps wait in three parallel
    # arrays and are applied in the same order later, so the weights end up as without deferral.
    def _step(self, customer: int, product: int, target: float) -> None:
        if not self.deferred:
            self.apply_pending()  # steps restored from a checkpoint come first
            self.model.learn_one(customer, product, target)
            return
        self._pending_customers.append(customer)
        self._pending_products.append(product)
        self._pending_targets.append(target)

    def _reset_pending(self) -> None:
        self._pending_customers = array("q")
        self._pending_products = array("q")
        self._pending_targets = array("d")
        self._pending_next = 0

    @property
    def pending_steps(self) -> int:
        """SGD steps learned but not yet applied to the weights."""
        return len(self._pending_customers) - self._pending_next

    def apply_pending(self, seconds: float | None = None) -> int:
        """Apply deferred SGD steps in order, for at most ``seconds`` (None: all); return how many."""
        if not self.pending_steps:
            return 0
        deadline = None if seconds is None else time.monotonic() + seconds
        learn_one = self.model.learn_one
        customers, products, targets = self._pending_customers, self._pending_products, self._pending_targets
        start = index = self._pending_next
        end = len(customers)
        while index < end:
            chunk_end = min(end, index + 256)
            for position in range(index, chunk_end):
                learn_one(customers[position], products[position], targets[position])
            index = chunk_end
            if deadline is not None and time.monotonic() >= deadline:
                break
        self._pending_next = index
        if index == end:
            self._reset_pending()
        elif index > 1_000_000:  # drop the applied prefix now and then, so the arrays do not grow without end
            self._pending_customers = customers[index:]
            self._pending_products = products[index:]
            self._pending_targets = targets[index:]
            self._pending_next = 0
        return index - start

    def item_matrix(self, product_count: int) -> tuple[np.ndarray, np.ndarray]:
        """Product latent vectors and biases as arrays (products never seen are zeros)."""
        model = self.model
        biases = np.zeros(product_count)
        latents = np.zeros((product_count, self.factors))
        if model.i_latents:
            keys = np.fromiter(model.i_latents.keys(), dtype=np.int64, count=len(model.i_latents))
            latents[keys] = np.stack(list(model.i_latents.values()))
        if model.i_biases:
            keys = np.fromiter(model.i_biases.keys(), dtype=np.int64, count=len(model.i_biases))
            biases[keys] = np.fromiter(model.i_biases.values(), dtype=np.float64, count=len(keys))
        return latents, biases

    def scores(self, customer: int, product_count: int,
               items: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Predicted affinity of the customer for every product index; products never seen score 0.

        Reads the weights without river's ``predict_one``, which would add
        weights for unseen keys and so change the state. ``items`` is
        ``item_matrix(product_count)`` computed earlier, valid until the next learning step.
        """
        latents, biases = items if items is not None else self.item_matrix(product_count)
        user = self.model.u_latents.get(customer)
        if user is None:
            return biases
        return latents @ user + biases

    def export(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        """Return the header fields and arrays that ``restore`` needs, in a deterministic order.

        Deferred SGD steps that are still waiting are exported as they are, after
        the weights, and ``restore`` queues them again. Applying them first would
        stall a stream worker for as long as they take. So the same events give
        the same bytes only when no step is waiting.
        """
        model = self.model

        def keyed_vectors(table: dict) -> tuple[np.ndarray, np.ndarray]:
            keys = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
            values = np.stack(list(table.values())) if table else np.zeros((0, self.factors))
            return keys, values

        def keyed_scalars(table: dict) -> tuple[np.ndarray, np.ndarray]:
            keys = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
            return keys, np.fromiter(table.values(), dtype=np.float64, count=len(table))

        arrays = {f"{prefix}.recent": self.recent}
        if self.pending_steps:
            start = self._pending_next
            arrays[f"{prefix}.pending.customers"] = np.frombuffer(self._pending_customers, dtype=np.int64)[start:].copy()
            arrays[f"{prefix}.pending.products"] = np.frombuffer(self._pending_products, dtype=np.int64)[start:].copy()
            arrays[f"{prefix}.pending.targets"] = np.frombuffer(self._pending_targets, dtype=np.float64)[start:].copy()
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
        if f"{prefix}.pending.customers" in arrays:
            self._reset_pending()
            self._pending_customers.extend(arrays[f"{prefix}.pending.customers"].tolist())
            self._pending_products.extend(arrays[f"{prefix}.pending.products"].tolist())
            self._pending_targets.extend(arrays[f"{prefix}.pending.targets"].tolist())
        self.purchases = header["purchases"]
        self.draws = header["draws"]
        self.initializer.draws = header["initializer_draws"]
        model.global_mean = stats.Mean._from_state(header["mean_count"], header["mean"])
        for optimizer, iterations in zip(self._optimizers(), header["optimizer_iterations"], strict=True):
            optimizer.n_iterations = iterations

    def _optimizers(self) -> list:
        model = self.model
        return [model.u_bias_optimizer, model.i_bias_optimizer, model.u_latent_optimizer, model.i_latent_optimizer]
