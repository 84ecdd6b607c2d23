"""Keras layers for the recipes: Keras's own maths, in fewer and faster kernels.

A model saved with one (a run's `best.keras`) loads with `keras.saving.load_model` once
this module is imported (`import tfkit.layers`); the exports need nothing.
"""

import tensorflow as tf
import keras


@keras.saving.register_keras_serializable(package="tfkit")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras's `BatchNormalization`, through TensorFlow's fused kernel where it can.

    Named as Keras's, so its layers are too ("batch_normalization_3"): the same names in
    `gradients.csv` and in a backup's weights as before.

    Keras 3 normalises in separate ops (the moments, then the scale and shift) and
    differentiates each; on a 4-D float32 input with its channels last, one
    `FusedBatchNormV3` op and its gradient do the same work (oneDNN's batch norm): the
    ResNet's training step took 55 ms instead of 77 (batch 32, 2 cores). The variables,
    the momentum and the moving averages are Keras's (the variance the biased one, as
    Keras keeps it). Anything else (a mask, renorm, synchronized, no scale or centre,
    another dtype or shape) runs Keras's own `call`.
    """

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True
            )
            # The op returns the variance over n - 1 (for its own moving average).
            count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], variance.dtype)
            variance = variance * (count - 1.0) / count
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False,
        )  # fmt: skip
        return outputs

    def _fusable(self, inputs, mask):
        return (
            mask is None
            and not self.renorm
            and not self.synchronized
            and self.center
            and self.scale
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and inputs.dtype == tf.float32
            and self.compute_dtype == "float32"
        )
