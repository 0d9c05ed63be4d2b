"""The seed algorithm in plain numpy: the specification of fastpg.

Everything is float64. The compiled kernels in :mod:`fastpg.kernels` export the
same functions with the same signatures and are tested against these: the
seed's five, and ``gae``, the advantages of the coming actor-critic.
"""
import numpy as np

from . import _validate

BACKGROUND = (144, 109)


def preprocess(frame):
    """uint8 (210, 160, 3) Pong frame -> float64 (6400,) of 0/1.

    Rows 35..194, every second row and column, red channel; the background
    values 144 and 109, and 0, become 0; anything else becomes 1.
    """
    frame = _validate.frame(frame)
    red = frame[35:195:2, ::2, 0]
    foreground = (red != 0) & (red != BACKGROUND[0]) & (red != BACKGROUND[1])
    return foreground.astype(np.float64).ravel()


def discount_rewards(rewards, gamma):
    """R_t = r_t + gamma * R_{t+1}, the running sum reset to 0 at every non-zero reward."""
    r = _validate.rewards(rewards)
    gamma = _validate.gamma(gamma)
    discounted = np.zeros_like(r)
    running = 0.0
    for t in reversed(range(r.size)):
        if r[t] != 0:
            running = 0.0  # a point ended here: returns do not cross it
        running = running * gamma + r[t]
        discounted[t] = running
    return discounted


def policy_forward(W1, W2, x):
    """p = sigmoid(W2 @ relu(W1 @ x)); returns (p, h) with h float64 (H,)."""
    _validate.weights(W1, W2)
    _validate.float_vector("x", x, W1.shape[1], "pixels, columns of W1")
    h = W1 @ x
    h[h < 0] = 0.0
    logit = W2 @ h
    p = 1.0 / (1.0 + np.exp(-logit))
    return float(p), h


def policy_backward(W2, eph, epdlogp, epx):
    """Gradients of sum_t epdlogp_t * logit_t: returns (dW1 (H, 6400), dW2 (H,)).

    eph (T, H) hidden activations, epdlogp (T,) already multiplied by the
    advantage, epx (T, 6400) inputs.
    """
    n_hidden = _validate.float_vector("W2", W2).shape[0]
    eph = _validate.float_matrix("eph", eph, {1: (n_hidden, "hidden units, length of W2")})
    T = eph.shape[0]
    _validate.float_vector("epdlogp", epdlogp, T, "steps, rows of eph")
    _validate.float_matrix("epx", epx, {0: (T, "steps, rows of eph"), 1: (_validate.N_PIXELS, "pixels")})
    dW2 = eph.T @ epdlogp
    dh = np.outer(epdlogp, W2)
    dh[eph <= 0] = 0.0  # ReLU gate
    dW1 = dh.T @ epx
    return dW1, dW2


def rmsprop_update(w, g, cache, learning_rate, decay_rate, eps=1e-5):
    """In place: cache = decay*cache + (1-decay)*g**2; w += lr*g/(sqrt(cache)+eps) (ascent)."""
    learning_rate, decay_rate, eps = _validate.rmsprop_args(w, g, cache, learning_rate, decay_rate, eps)
    cache *= decay_rate
    cache += (1.0 - decay_rate) * g**2
    w += learning_rate * g / (np.sqrt(cache) + eps)


def standardize(returns):
    """Subtract the mean and divide by the std; an all-equal vector becomes zeros, not NaN."""
    centred = returns - returns.mean()
    std = centred.std()
    return centred / std if std > 0 else centred


def gae(rewards, values, dones, last_value, gamma, lam):
    """Generalised advantage estimates GAE(gamma, lambda) over one segment -> (advantages, returns).

    rewards, values: float64 (T,), values[t] = V(s_t). dones: (T,) bool or
    uint8, true where step t ended an episode: nothing after it counts
    towards step t. Where the segment is cut mid-episode (dones[-1] false),
    last_value = V(s_T) bootstraps the rest. With
    delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t),
    A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}, and returns = A + values.
    """
    r = _validate.rewards(rewards)
    v = _validate.float_vector("values", values, r.shape[0], "steps, length of rewards")
    d = _validate.done_flags(dones, r.shape[0])
    gamma, lam = _validate.gamma(gamma), _validate.unit_interval("lam", lam)
    advantages = np.zeros_like(r)
    following_advantage, following_value = 0.0, float(last_value)
    for t in reversed(range(r.size)):
        carry = 0.0 if d[t] else 1.0
        delta = r[t] + gamma * following_value * carry - v[t]
        following_advantage = delta + gamma * lam * carry * following_advantage
        advantages[t] = following_advantage
        following_value = v[t]
    return advantages, advantages + v
