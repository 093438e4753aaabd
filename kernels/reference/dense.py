"""Fully-connected layer: Y = X @ W + b and its gradients.

Shapes: x (n, n_in), w (n_in, n_out), b (n_out,), dy (n, n_out); all one float dtype, C-contiguous.
"""
import numpy as np


def dense_forward(x, w, b):
    """Return ``x @ w + b``, shape (n, n_out)."""
    return x @ w + b


def dense_backward_input(dy, w):
    """Gradient with respect to the input: ``dy @ w.T``, shape (n, n_in)."""
    return dy @ w.T


def dense_backward_params(x, dy):
    """Gradients with respect to the parameters: ``(x.T @ dy, dy.sum(axis=0))``, shapes (n_in, n_out), (n_out,)."""
    return x.T @ dy, np.sum(dy, axis=0)
