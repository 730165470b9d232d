"""Random keys from integer seeds."""

from __future__ import annotations

import jax


def seed_key(seed: int) -> jax.Array:
    """The JAX random key of an integer ``seed``, the same in float32 and float64 mode.

    ``jax.random.key(seed)`` keeps only the low 32 bits of a seed unless 64-bit mode is on, so
    ``2**32 + 5`` would seed the same weights as ``5``. Here a seed in ``[0, 2**32)`` gives
    ``jax.random.key(seed)`` (runs seeded so far keep their weights); any other 64-bit seed,
    negative ones included, folds its high 32 bits into the key of its low 32 bits, so distinct
    seeds give distinct keys in either mode.
    """
    seed = int(seed)
    low, high = seed % 2**32, (seed // 2**32) % 2**32
    key = jax.random.key(low)
    return key if high == 0 else jax.random.fold_in(key, high)
