"""The seed algorithm in plain numpy: the specification of fastpg.

Everything is float64. The compiled kernels in :mod:`fastpg.kernels` export the
same functions with the same signatures and are tested against these: the
seed's five, and ``gae``, the advantages of the coming actor-critic.
"""
import numpy as np

from . import _validate
from .constants import FRAME_SIDE, PONG_BACKGROUND_REDS, PONG_FIRST_ROW


def foreground_table(background_reds):
    """uint8 (256,) indexed by red value: 0 at each of background_reds, 1 elsewhere.

    A game's frame rule as the kernels take it: one lookup per pixel, whatever
    the number of background colours. Pong's is foreground_table((0, 144, 109)).
    """
    table = np.ones(256, dtype=np.uint8)
    table[list(_validate.background_reds(background_reds))] = 0
    return table


PONG_FOREGROUND = foreground_table(PONG_BACKGROUND_REDS)  # the seed's rule, the default everywhere
PONG_FOREGROUND.setflags(write=False)


def frame_rule(first_row=PONG_FIRST_ROW, foreground=None):
    """The checked (first_row, foreground table) of a frame rule; foreground None is Pong's table.

    Shared by every reader of RGB frames, compiled or not, so that they agree on defaults and errors.
    """
    first_row = _validate.first_row(first_row)
    return first_row, PONG_FOREGROUND if foreground is None else _validate.foreground_table(foreground)


def _playfield(screen, first_row):
    """The 80 x 80 screen positions a frame rule reads: rows first_row, first_row + 2, ..., every second column."""
    return screen[first_row:first_row + 2 * FRAME_SIDE:2, ::2]


def preprocess(frame, first_row=PONG_FIRST_ROW, foreground=None):
    """uint8 (210, 160, 3) RGB frame -> float64 (6400,) of 0/1.

    Rows first_row..first_row + 159, every second row and column, red
    channel, each red value mapped through ``foreground`` (uint8 (256,) of
    0/1, see :func:`foreground_table`). The defaults are the seed's Pong rule:
    rows 35..194; 0 and the background values 144 and 109 become 0, anything
    else 1.
    """
    frame = _validate.frame(frame)
    first_row, table = frame_rule(first_row, foreground)
    return table[_playfield(frame, first_row)[..., 0]].astype(np.float64).ravel()


def is_foreground(red):
    """The seed's pixel rule on red values: neither 0 nor one of Pong's two background colours."""
    return PONG_FOREGROUND[red] == 1


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


# --- The actor-critic (``--algo ppo``): a softmax policy and a value on the seed's hidden layer ---

def preprocess_palette(screen, lut, first_row=PONG_FIRST_ROW):
    """uint8 (210, 160) palette-index screen -> float64 (6400,) of 0/1, through lut (256,) of 0/1.

    Reads the same positions as :func:`preprocess` with the same first_row. With
    ``lut[i]`` = 1 exactly when colour i's red value is foreground by
    preprocess's table, the result equals preprocess of the RGB screen.
    """
    screen = _validate.palette_screen(screen)
    lut = _validate.palette_lut(lut)
    values = lut[_playfield(screen, _validate.first_row(first_row))]
    if np.any(values > 1):
        raise ValueError("lut has no entry for a colour on this screen")
    return values.astype(np.float64).ravel()


def actor_input(current, previous, with_frame=False):
    """The actor-critic's input from the current and previous binary frames (float64 (6400,) of 0/1;
    previous None at an episode's start): the difference current - previous (zero at a start), then,
    with_frame, the current frame itself, (12800,)."""
    difference = np.zeros_like(current) if previous is None else current - previous
    return np.concatenate([difference, current]) if with_frame else difference


def expand_frame_record(indices, signs, offsets, keyframes):
    """The full sparse record of a frame-seeing network's compact one: (indices, signs, offsets).

    In the full record every row lists its difference's entries, then the
    current binary frame's foreground pixels i as entries 6400 + i of sign
    +1, both in ascending order. A compact record lists the frame only in
    its keyframe rows (``keyframes`` uint8 (R,), 1 there): a row's frame is
    otherwise the row before's frame plus the row's difference, since the
    stepper took that difference against exactly that frame. So a step
    records about 30 fewer entries, and the first row must be a keyframe.
    """
    n_pixels = FRAME_SIDE * FRAME_SIDE
    keyframes = np.asarray(keyframes)
    if keyframes.shape != (len(offsets) - 1,):
        raise ValueError(f"keyframes must have one entry per row ({len(offsets) - 1}), got shape {keyframes.shape}")
    if len(keyframes) and not keyframes[0]:
        raise ValueError("a compact frame record's first row must be a keyframe")
    frame = np.zeros(n_pixels, dtype=np.int64)
    rows_indices, rows_signs = [], []
    for row, key in enumerate(keyframes):
        row_indices = np.asarray(indices[offsets[row]:offsets[row + 1]], dtype=np.int64)
        row_signs = np.asarray(signs[offsets[row]:offsets[row + 1]], dtype=np.int64)
        in_difference = row_indices < n_pixels
        if key:
            frame[:] = 0
            frame[row_indices[~in_difference] - n_pixels] = 1
        else:
            if not in_difference.all():
                raise ValueError(f"row {row} is not a keyframe but lists frame entries")
            np.add.at(frame, row_indices, row_signs)
            if frame.min() < 0 or frame.max() > 1:
                raise ValueError(f"row {row}'s difference does not apply to the frame before it")
        foreground = np.flatnonzero(frame)
        rows_indices += [row_indices[in_difference], foreground + n_pixels]
        rows_signs += [row_signs[in_difference], np.ones(len(foreground), dtype=np.int64)]
    lengths = [len(rows_indices[2 * r]) + len(rows_indices[2 * r + 1]) for r in range(len(keyframes))]
    return (np.concatenate(rows_indices or [np.empty(0)]).astype(np.int16),
            np.concatenate(rows_signs or [np.empty(0)]).astype(np.int8),
            np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32))


def actor_critic_forward(params, x):
    """Dense inputs x (T, D) -> (logits (T, A), values (T,), h (T, H)).

    h = relu(W1 x + b1); logits = W_pi h + b_pi; value = w_v . h + b_v.
    params: W1 (H, D), b1 (H,), W_pi (A, H), b_pi (A,), w_v (H,), b_v (1,).
    D is 6400, the 80x80 difference frame, or 12,800: the difference
    followed by the current binary frame (``--inputs difference+frame``).
    """
    h = np.maximum(x @ params["W1"].T + params["b1"], 0.0)
    logits = h @ params["W_pi"].T + params["b_pi"]
    values = h @ params["w_v"] + params["b_v"][0]
    return logits, values, h


def log_softmax(logits):
    """Row-wise log of the softmax of logits (T, A)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_kl(old_logits, new_logits):
    """Mean over rows of KL(old || new) between the softmax policies of two (T, A) logit arrays."""
    old_logp, new_logp = log_softmax(old_logits), log_softmax(new_logits)
    return float(np.mean(np.sum(np.exp(old_logp) * (old_logp - new_logp), axis=1)))


def lagged_advantages(advantages, logp_proximal, logp_behaviour, cap):
    """Advantages of steps played by an older policy, for the surrogate around the newer one.

    With ``--policy-lag 1`` a batch is played with the weights one update
    older than those the update starts from. The clipped surrogate is taken
    around the update's starting policy (the proximal one, whose ratio the
    clip and the KL limit bound), and each step's standardised advantage is
    weighted by pi_proximal(a|s) / pi_behaviour(a|s), at most ``cap``: the
    importance weight that makes the expectation one over the proximal
    policy's actions (Hilton et al. 2021, "decoupled" PPO). logp_* are the
    chosen actions' log-probabilities, (T,).
    """
    return advantages * np.minimum(np.exp(logp_proximal - logp_behaviour), cap)


def ppo_loss(params, x, actions, logp_old, advantages, returns, clip, vf_coef, ent_coef):
    """The actor-critic's minibatch loss, its gradient, and statistics.

    Per step t, with ratio r = exp(logp(a_t) - logp_old_t):
    loss_t = -min(r A_t, clip(r, 1 - clip, 1 + clip) A_t)
             + vf_coef * (V(s_t) - R_t)**2 / 2 - ent_coef * entropy(pi(s_t)).
    The loss is the mean over the T steps. Returns (loss, grads, stats):
    grads maps each parameter's name to d loss / d parameter; stats has the
    mean policy loss, value loss ((V - R)**2 / 2), entropy and clipped fraction.
    """
    T = x.shape[0]
    logits, values, h = actor_critic_forward(params, x)
    logp = log_softmax(logits)
    probs = np.exp(logp)
    rows = np.arange(T)
    ratio = np.exp(logp[rows, actions] - logp_old)
    clipped = np.clip(ratio, 1.0 - clip, 1.0 + clip)
    policy_loss = -np.minimum(ratio * advantages, clipped * advantages)
    value_error = values - returns
    entropy = -np.sum(probs * logp, axis=1)
    loss = np.mean(policy_loss + vf_coef * 0.5 * value_error**2 - ent_coef * entropy)
    # The min takes the clipped term (whose gradient is 0) only where it is strictly smaller.
    active = ratio * advantages <= clipped * advantages
    d_logp_a = np.where(active, -ratio * advantages, 0.0)  # d policy_loss / d logp(a)
    onehot = np.zeros_like(logits)
    onehot[rows, actions] = 1.0
    d_logits = d_logp_a[:, None] * (onehot - probs)
    d_logits += ent_coef * probs * (logp + entropy[:, None])  # -ent_coef * d entropy / d logits
    d_values = vf_coef * value_error
    d_logits /= T
    d_values /= T
    dh = d_logits @ params["W_pi"] + np.outer(d_values, params["w_v"])
    dh[h <= 0] = 0.0
    grads = {
        "W1": dh.T @ x, "b1": dh.sum(axis=0),
        "W_pi": d_logits.T @ h, "b_pi": d_logits.sum(axis=0),
        "w_v": h.T @ d_values, "b_v": np.array([d_values.sum()]),
    }
    stats = {"policy_loss": float(policy_loss.mean()), "value_loss": float(np.mean(0.5 * value_error**2)),
             "entropy": float(entropy.mean()), "clip_fraction": float(np.mean(~active))}
    return float(loss), grads, stats


def linear_decay(value, env_steps, decay_steps):
    """A scheduled setting (the learning rate, the entropy weight) after ``env_steps`` steps of play:
    falling linearly from value to 0 at ``decay_steps`` and staying there; decay_steps 0 keeps it constant."""
    if decay_steps == 0:
        return value
    return value * max(0.0, 1.0 - env_steps / decay_steps)


def touched_columns(indices, offsets, rows):
    """The sorted distinct inputs that the given rows of a sparse record list: the columns of the first
    layer whose gradient those rows can make nonzero."""
    rows = np.asarray(rows, dtype=np.int64)
    listed = [indices[offsets[r]:offsets[r + 1]] for r in rows]
    return np.unique(np.concatenate(listed).astype(np.int64)) if listed else np.zeros(0, dtype=np.int64)


def adam_update(w, g, m, v, step, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8, clear_gradient=False,
                columns=None):
    """In place, Adam's descent step number ``step`` (1, 2, ...) on w with gradient g and moments m, v;
    returns whether every new value of w, m and v is finite. With clear_gradient, g is set to zero
    afterwards, ready for the next step's gradient to be accumulated into it.

    columns (a 2-D w only): the lazy step, on those columns of w, m and v alone; the others keep their
    values, however their moments would have moved them (``touched_columns`` lists a minibatch's)."""
    if columns is not None:
        part = [array[:, columns] for array in (w, g, m, v)]
        finite = adam_update(*part, step, learning_rate, beta1, beta2, eps, clear_gradient)
        for array, new in zip((w, g, m, v), part):
            array[:, columns] = new
        return finite
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * g**2
    m_hat_scale = 1.0 / (1.0 - beta1**step)
    v_hat_scale = 1.0 / (1.0 - beta2**step)
    w -= learning_rate * (m * m_hat_scale) / (np.sqrt(v * v_hat_scale) + eps)
    if clear_gradient:
        g[...] = 0.0
    return bool(np.isfinite(w).all() and np.isfinite(m).all() and np.isfinite(v).all())
