"""The one rule every trainer applies a step with: task loss, method penalty, step gradients.

A trainer (the GAN's `train_step`, the forgetting benchmark's MLP) records on one GradientTape
(persistent when `method.needs_step_gradients`) its task loss, `method.penalty()` and their
sum, then calls `apply_step`. Methods that read the task loss's own gradient (SI's path
integral) get it without a second pass over the penalty; the others keep one backward pass.
"""

from __future__ import annotations

import tensorflow as tf


def apply_step(optimizer, method, variables, tape, task, penalty, total) -> None:
    """One optimiser step on total = task + penalty (all three recorded on `tape`), then
    `method.after_step` with the task loss's gradients (or total's, for a method that does not
    read them)."""
    if method.needs_step_gradients:  # the method reads the task loss's own gradient
        task_grads, penalty_grads = tape.gradient(task, variables), tape.gradient(penalty, variables)
        apply_gradients(optimizer, [sum_gradients(a, b) for a, b in zip(task_grads, penalty_grads, strict=True)],
                        variables)
        method.after_step(dense_gradients(task_grads, variables))
    else:  # one backward pass, as before the plugins
        grads = tape.gradient(total, variables)
        apply_gradients(optimizer, grads, variables)
        method.after_step(grads)


def sum_gradients(a, b):
    """a + b as the tape would sum them for a + b's target: None where neither reaches, and
    an IndexedSlices kept as it is when the other is None (Keras' Adam updates only the rows an
    IndexedSlices names; densified, one tiny default batch's weights came out up to 3.8 apart)."""
    if a is None or b is None:
        return b if a is None else a
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def apply_gradients(optimizer, grads, variables) -> None:
    """Apply the gradients that reach their variable (Keras skips the others too). When none
    does, nothing is applied: the seed's dense generator through a residue or GLN
    discriminator sees it only through floor(x), and with a penalty that is zero before the
    first task (replay, none) Keras would raise "No gradients provided for any variable"."""
    pairs = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
    if pairs:
        optimizer.apply_gradients(pairs)


def dense_gradients(grads, variables) -> list:
    """Zeros where a gradient is None (UnconnectedGradients.ZERO fails on Keras variables,
    whose dtype is a string), dense tensors elsewhere."""
    return [tf.zeros(v.shape, v.dtype) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(grads, variables, strict=True)]
