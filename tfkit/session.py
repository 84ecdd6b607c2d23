"""The Keras session a run builds its models in: seeded, and reset without losing the policy.

`keras.backend.clear_session()` forgets the models built so far (so layers get the names
a new process gives them, which `--freeze LAYER` reads) but also resets Keras's global
dtype policy to float32: a recipe that set `mixed_bfloat16` would train the rest of the
run in float32 after it, and a resumed run, which skips what cleared the session, in
bfloat16. `new_session` is the one place a run resets the session.
"""

import keras
import tensorflow as tf


def seed_everything(seed, deterministic=False):
    """Seeds Python, NumPy, TensorFlow and Keras; `deterministic` also fixes TF's ops."""
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def new_session(seed, deterministic=False, policy=None):
    """Forgets the models built so far, seeds everything again, and keeps the dtype policy
    (or sets `policy`: a run starts from float32 and sets its own)."""
    policy = policy or keras.mixed_precision.global_policy()
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    seed_everything(seed, deterministic)


def computed_policy(model):
    """The dtype policy `model`'s layers compute in (its output layer may differ: float32).

    The policy of the first layer with weights; the global policy for a model without any.
    """
    for layer in model.layers:
        if layer.weights:
            return layer.dtype_policy.name
    return keras.mixed_precision.global_policy().name
