"""Learning offloaders: they start knowing nothing of the models' quality and learn it
from what served tasks really scored and took (``observe``, after every round).

- ``LinUCB``: a disjoint linear contextual bandit (Li et al. 2010), one arm per
  (node, model) pair, optimistic by ``alpha`` standard deviations;
- ``Thompson``: the same linear model per arm read as a Bayesian regression, scoring
  with a draw from the posterior (Agrawal and Goyal 2013);
- ``MLPPredictor``: the original distribution center's approach, a small neural
  network predicting quality and latency of every option, greedy on the prediction.

docs/fleet-offloaders.md defines their features, rewards and updates. All three are
deterministic given ``seed`` and change state only in ``choose`` and ``observe``, so
``serve`` one by one and ``serve_batch`` give the same responses. A choice costs a
few vector operations over the options: what depends only on the arms is gathered
once per round (the learnt state changes only between rounds).
"""

import math

import numpy as np

from edgellm.fleet.offloaders import Offloader
from edgellm.tasks.registry import task_types

PROMPT_SCALE = 8.0   # log1p(prompt tokens) / 8 is about 0.4-1 for 20-2000 tokens


def _number(name, value, low=0.0, strict=False, high=math.inf):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (value > low if strict else value >= low) or not value <= high:
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise ValueError(f"{name} must be {bound}" + (f" and <= {high:g}" if high < math.inf
                                                        else "") + f", got {value!r}")
    return value


def _prompt_feature(task):
    return math.log1p(task.prompt_tokens) / PROMPT_SCALE


class _FallbackGuard:
    """Which options are worth exploring: a model that is ready, at an expected latency
    below the lowest one the SLO-aware fallback has overridden so far.

    Exploring a model still loading, or a node whose queue breaks the SLO, teaches
    nothing: the fallback sends the task to the cloud, the option is never observed
    and stays the most promising one (a trap that sent most tasks to the cloud after
    each caching round). Offloaders are not told the SLO; the expected latency of a
    choice the fallback overrode is an upper bound on it."""

    def __init__(self):
        self.rejected_s = math.inf

    def explorable(self, options):
        if self.rejected_s == math.inf:
            return options.ready
        return options.ready & (options.latency_s < self.rejected_s)

    def overridden(self, expected_latency_s):
        self.rejected_s = min(self.rejected_s, expected_latency_s)

    def served(self, outcomes, chosen, latency_at):
        """``(outcome, what choose() kept)`` of the tasks the edge served, popped from
        ``chosen`` (task index -> a tuple whose ``latency_at`` item is the expected
        latency); a task the fallback sent to the cloud lowers the bound instead."""
        for outcome in outcomes:
            kept = chosen.pop(outcome.task.index, None)
            if kept is None:
                continue
            if outcome.node < 0:
                self.overridden(kept[latency_at])
                continue
            yield outcome, kept


class _ArmTable:
    """Arm ids of (node, model) pairs, created on first sight (the pairs change when
    caches do) and looked up vectorised. ``per_model``: one arm per model."""

    def __init__(self, per_model=False):
        self.per_model = per_model
        self.ids = np.full((0, 0), -1, dtype=np.int64)
        self.count = 0

    def lookup(self, node, model):
        """Arm id per option row; new pairs get the next ids, in row order."""
        if self.per_model:
            node = np.zeros_like(node)
        rows, cols = int(node.max()) + 1, int(model.max()) + 1
        if rows > self.ids.shape[0] or cols > self.ids.shape[1]:
            grown = np.full((max(rows, self.ids.shape[0]), max(cols, self.ids.shape[1])), -1,
                            dtype=np.int64)
            grown[:self.ids.shape[0], :self.ids.shape[1]] = self.ids
            self.ids = grown
        arms = self.ids[node, model]
        for row in np.flatnonzero(arms < 0):   # first sight; a model can repeat per_model
            key = node[row], model[row]
            if self.ids[key] < 0:
                self.ids[key] = self.count
                self.count += 1
        return self.ids[node, model]


class _SameOptions:
    """Recognises the option rows of the previous call. The simulator passes the same
    node and model arrays until a caching round changes the candidates, so what
    depends only on the (node, model) rows is computed once per such period."""

    def __init__(self):
        self.node = self.model = None

    def changed(self, options):
        if options.node is self.node and options.model is self.model:
            return False
        self.node, self.model = options.node, options.model
        return True


class _LinearBandit(Offloader):
    """Per arm, a ridge regression of the reward on the task's context; the choice is the
    best mean plus an exploration term (the subclass says which).

    Context x (d = task types + 2): one-hot task type, 1, log1p(prompt tokens) / 8.
    Reward r = quality - latency_weight * latency (seconds). The center's expected
    latency L^ (queue, model load, prefill, decode) is a known offset: each arm learns
    y = r + latency_weight * L^ = quality - latency_weight * (latency - L^) ~ theta_a . x,
    and an option scores theta_a . x + exploration - latency_weight * L^. Quality is
    learnt from nothing; latency starts from the center's estimate and learns its
    error. (The expected wait as a feature as well widened the confidence of busy
    options and slowed learning on the shipped topologies; through L^ it counts.)

    Update, per round: A_a += x x', b_a += y x over the round's outcomes of arm a
    (A_a starts at ridge * I), then theta_a = A_a^-1 b_a, with the inverses of the
    arms that learnt taken in one batched call (exact, and cheaper in numpy than a
    Sherman-Morrison step per outcome). Tasks the fallback sent to the cloud teach
    the arms nothing (the option did not serve them).
    """

    learns = True

    def __init__(self, latency_weight=0.02, ridge=1.0, arms="node_model", seed=0):
        self.latency_weight = _number("latency_weight", latency_weight)
        self.ridge = _number("ridge", ridge, strict=True)
        if arms not in ("node_model", "model"):
            raise ValueError(f"arms must be 'node_model' or 'model', got {arms!r}")
        self.arms = arms
        self.seed = int(seed)
        self._table = None

    # -- state, created on the first task ----------------------------------------------

    def _start(self):
        t = self._types = len(task_types())
        self._d = t + 2                                  # type one-hot, bias, prompt
        self._table = _ArmTable(per_model=self.arms == "model")
        self._a = np.empty((0, self._d, self._d))        # A per arm
        self._b = np.empty((0, self._d))                 # sum of y x per arm
        # what choose() reads, per task type and arm; refreshed for the arms that learnt
        self._mean0 = np.empty((t, 0))                   # theta[type] + theta[bias]
        self._slope = np.empty(0)                        # theta[prompt]
        self._var0 = np.empty((t, 0))                    # u' A^-1 u, u = e_type + e_bias
        self._var1 = np.empty((t, 0))                    # 2 (A^-1 u)[prompt]
        self._var2 = np.empty(0)                         # A^-1[prompt, prompt]
        self._same = _SameOptions()
        self._arm_rows = None                            # arm id per option row
        self._gathered = {}                              # type -> read-outs of those arms
        self._chosen = {}                                # task index -> (arm, type, prompt, L^)
        self._guard = _FallbackGuard()
        self._rng = np.random.default_rng(self.seed)

    def _grow(self, count):
        have = len(self._b)
        if count <= have:
            return
        extra = max(count, 2 * have, 8) - have
        d, t, r = self._d, self._types, self.ridge
        self._a = np.concatenate([self._a, np.broadcast_to(np.eye(d) * r, (extra, d, d))])
        self._b = np.concatenate([self._b, np.zeros((extra, d))])
        # a new arm: theta = 0, A^-1 = I / ridge
        self._mean0 = np.concatenate([self._mean0, np.zeros((t, extra))], axis=1)
        self._slope = np.concatenate([self._slope, np.zeros(extra)])
        self._var0 = np.concatenate([self._var0, np.full((t, extra), 2.0 / r)], axis=1)
        self._var1 = np.concatenate([self._var1, np.zeros((t, extra))], axis=1)
        self._var2 = np.concatenate([self._var2, np.full(extra, 1.0 / r)])

    def _refresh(self, arms):
        """Solve the arms that learnt and store their read-outs per task type: with
        x = u_t + p e_prompt, theta . x = mean0[t] + p slope and
        x' A^-1 x = var0[t] + p var1[t] + p^2 var2."""
        t, bias, prompt = self._types, self._types, self._types + 1
        a_inv = np.linalg.inv(self._a[arms])                   # (k, d, d), symmetric
        theta = np.einsum("kij,kj->ki", a_inv, self._b[arms])  # (k, d)
        self._mean0[:, arms] = (theta[:, :t] + theta[:, bias:bias + 1]).T
        self._slope[arms] = theta[:, prompt]
        a_inv_u = a_inv[:, :, :t] + a_inv[:, :, bias:bias + 1]   # column t: A^-1 u_t
        diagonal = np.arange(t)
        self._var0[:, arms] = (a_inv_u[:, diagonal, diagonal] + a_inv_u[:, bias, :]).T
        self._var1[:, arms] = 2 * a_inv_u[:, prompt, :].T
        self._var2[arms] = a_inv[:, prompt, prompt]
        self._gathered = {}

    def _readouts(self, t, options):
        """Arm per option row, and the read-outs of those arms for task type ``t``:
        gathered once per round, type and candidate set."""
        if self._same.changed(options):
            self._arm_rows = self._table.lookup(options.node, options.model)
            self._grow(self._table.count)
            self._gathered = {}
        arms = self._arm_rows
        got = self._gathered.get(t)
        if got is None:
            got = self._gathered[t] = (self._mean0[t][arms], self._slope[arms],
                                       self._var0[t][arms], self._var1[t][arms],
                                       self._var2[arms])
        return arms, got

    # -- the offloader -------------------------------------------------------------------

    def choose(self, task, options):
        if self._table is None:
            self._start()
        t, p = task.type_index, _prompt_feature(task)
        arms, (mean0, slope, var0, var1, var2) = self._readouts(t, options)
        var = var0 + p * var1
        var += (p * p) * var2
        np.maximum(var, 0.0, out=var)
        score = self._exploration(np.sqrt(var, out=var), arms)
        explorable = self._guard.explorable(options)
        if not explorable.all():
            score[~explorable] = 0.0
        score += mean0
        score += p * slope
        score -= self.latency_weight * options.latency_s
        row = int(np.argmax(score))
        self._chosen[task.index] = (int(arms[row]), t, p, float(options.latency_s[row]))
        return row

    def _exploration(self, width, arms):
        """The exploration term per option from its standard deviation ``width``
        (may be computed in place)."""
        raise NotImplementedError

    def observe(self, outcomes):
        if self._table is None:
            return
        learnt = [(*chosen[:3], outcome.quality - self.latency_weight
                    * (outcome.latency_s - outcome.expected_latency_s))
                   for outcome, chosen in self._guard.served(outcomes, self._chosen, 3)]
        if not learnt:
            return
        rows = np.array(learnt)
        arms = rows[:, 0].astype(np.int64)
        x = np.zeros((len(rows), self._d))
        x[np.arange(len(rows)), rows[:, 1].astype(np.int64)] = 1.0
        x[:, self._types] = 1.0
        x[:, self._types + 1] = rows[:, 2]
        np.add.at(self._a, arms, x[:, :, None] * x[:, None, :])
        np.add.at(self._b, arms, rows[:, 3:4] * x)
        self._refresh(np.unique(arms))


class LinUcbOffloader(_LinearBandit):
    """Disjoint LinUCB: score = theta_a . x + alpha * sqrt(x' A_a^-1 x) - latency_weight * L^."""

    def __init__(self, latency_weight=0.02, alpha=0.5, ridge=1.0, arms="node_model", seed=0):
        super().__init__(latency_weight=latency_weight, ridge=ridge, arms=arms, seed=seed)
        self.alpha = _number("alpha", alpha)

    def _exploration(self, width, arms):
        width *= self.alpha
        return width


class ThompsonOffloader(_LinearBandit):
    """Linear Thompson sampling: theta_a ~ N(A_a^-1 b_a, noise_std^2 A_a^-1) per arm.

    All options of an arm share the task's context, so drawing theta_a and taking
    theta_a . x is drawing x . theta_a ~ N(mean, noise_std^2 x' A_a^-1 x) directly:
    one standard normal per arm and task, from a generator seeded with ``seed``."""

    def __init__(self, latency_weight=0.02, noise_std=0.25, ridge=1.0, arms="node_model",
                 seed=0):
        super().__init__(latency_weight=latency_weight, ridge=ridge, arms=arms, seed=seed)
        self.noise_std = _number("noise_std", noise_std)

    def _exploration(self, width, arms):
        width *= self.noise_std
        width *= self._rng.standard_normal(self._table.count)[arms]
        return width


class MlpPredictorOffloader(Offloader):
    """The original distribution center's predictor: a small MLP (scikit-learn's
    MLPRegressor) maps (task, option) features to quality and log1p(latency s); the
    choice is greedy on predicted quality - latency_weight * predicted latency -
    load_weight * expected wait (s).

    Features: one-hot task type, log1p(prompt tokens) / 8, one-hot node, one-hot model,
    log1p(expected wait s) (the load; a model still loading shows as wait). Until
    ``warmup`` outcomes have been observed the choice is uniformly random (seeded);
    afterwards with probability ``epsilon``; exploration skips options a model still
    loads on or the fallback would override (see ``_FallbackGuard``).

    Training is online: when the outcomes not yet trained on reach
    max(batch_size, seen / 16), one ``partial_fit`` (one Adam epoch in minibatches of
    ``batch_size``) over them plus ``replay`` times as many older ones drawn from the
    last ``memory`` (at most ``max_rows`` rows per fit). The cadence and cap bound the
    cost: about a hundred fits in a 100,000-task run. Prediction is a numpy forward
    pass over all options at once, the one-hot rows of the first layer gathered once
    per round."""

    learns = True

    def __init__(self, latency_weight=0.02, load_weight=0.01, hidden=(32,),
                 learning_rate=0.01, warmup=64, epsilon=0.05, batch_size=32, replay=3,
                 memory=20000, max_rows=1024, seed=0):
        self.latency_weight = _number("latency_weight", latency_weight)
        self.load_weight = _number("load_weight", load_weight)
        hidden = (hidden,) if isinstance(hidden, (int, float, str)) else hidden
        try:
            hidden = tuple(int(h) for h in hidden)
        except (TypeError, ValueError):
            raise ValueError(f"hidden must be layer sizes, got {hidden!r}") from None
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be positive layer sizes, got {hidden!r}")
        self.hidden = hidden
        self.learning_rate = _number("learning_rate", learning_rate, strict=True)
        self.warmup = int(_number("warmup", warmup))
        self.epsilon = _number("epsilon", epsilon, high=1.0)
        self.batch_size = int(_number("batch_size", batch_size, low=1))
        self.replay = _number("replay", replay)
        self.memory = int(_number("memory", memory, low=1))
        self.max_rows = int(_number("max_rows", max_rows, low=1))
        self.seed = int(seed)
        self._rng = None

    # -- state -------------------------------------------------------------------------

    def _start(self):
        self._types = len(task_types())
        self._nodes = self._models = 0   # one-hot widths; grown (and the net refitted)
        self._net = None
        self._seen = 0
        self._chosen = {}                # task index -> (wait feature, L^) of the choice
        self._guard = _FallbackGuard()
        self._history = []               # (type, prompt, node, model, wait, quality, latency)
        self._pending = 0                # newest history records not trained on
        self._same = _SameOptions()
        self._first = None               # first layer's node + model rows per option row
        self._layers = None
        self._rng = np.random.default_rng(self.seed)

    def _rows(self, records):
        """Feature matrix and targets (quality, log1p latency) of history records."""
        r = np.array(records, dtype=np.float64)
        n, t, nodes = len(r), self._types, self._nodes
        x = np.zeros((n, t + 1 + nodes + self._models + 1))
        i = np.arange(n)
        x[i, r[:, 0].astype(np.int64)] = 1.0
        x[:, t] = r[:, 1]
        x[i, t + 1 + r[:, 2].astype(np.int64)] = 1.0
        x[i, t + 1 + nodes + r[:, 3].astype(np.int64)] = 1.0
        x[:, -1] = r[:, 4]
        return x, np.column_stack([r[:, 5], np.log1p(r[:, 6])])

    def _widen(self, options):
        """Widen the one-hots to cover a new node or model: a fresh net, refitted on
        the remembered outcomes (rare: when caching brings a model no node had)."""
        node_max, model_max = int(options.node.max()), int(options.model.max())
        if node_max < self._nodes and model_max < self._models:
            return
        self._nodes = max(self._nodes, _capacity(node_max))
        self._models = max(self._models, _capacity(model_max))
        if self._net is not None:
            self._net = None
            self._pending = min(len(self._history), self.max_rows)
            self._fit(replay=0.0)

    def _fit(self, replay=None):
        replay = self.replay if replay is None else replay
        new = min(self._pending, self.max_rows)
        first = len(self._history) - new
        self._pending = 0
        if not new:
            return
        older = min(first, int(replay * new), self.max_rows - new)
        picked = self._rng.choice(first, older, replace=False).tolist() if older > 0 else []
        x, y = self._rows([self._history[i] for i in sorted(picked)] + self._history[first:])
        if self._net is None:
            # heavy (scikit-learn, about 1.7 s to import): only this offloader needs it
            from sklearn.neural_network import MLPRegressor
            self._net = MLPRegressor(hidden_layer_sizes=self.hidden, batch_size=self.batch_size,
                                     learning_rate_init=self.learning_rate,
                                     random_state=self.seed)
        self._net.partial_fit(x, y)
        self._layers = self._first = None   # the forward pass re-reads the weights

    # -- prediction ----------------------------------------------------------------------

    def _weights(self):
        """The net's weights in float32 (half the memory traffic of a forward pass),
        the first layer split by feature group."""
        if self._layers is None:
            w = [a.astype(np.float32) for a in self._net.coefs_]
            b = [a.astype(np.float32) for a in self._net.intercepts_]
            t, n = self._types, self._nodes
            self._layers = {"type": w[0][:t] + b[0], "prompt": w[0][t],
                            "node": w[0][t + 1:t + 1 + n], "model": w[0][t + 1 + n:-1],
                            "wait": w[0][-1], "rest": list(zip(w[1:], b[1:]))}
        return self._layers

    def predict(self, task, options, wait):
        """Predicted quality and latency (s) of each option; ``wait`` is the wait feature.

        First layer: the node and model rows (per option, gathered once per round) plus
        [wait, 1] @ [w_wait; w_type + prompt * w_prompt], a matrix product rather than
        broadcast arithmetic, which numpy does several times slower."""
        layers = self._weights()
        if self._first is None:
            self._first = layers["node"][options.node] + layers["model"][options.model]
            self._inputs = np.ones((len(options), 2), dtype=np.float32)
            self._hidden = np.empty_like(self._first)
        self._inputs[:, 0] = wait
        task_row = layers["type"][task.type_index] + np.float32(_prompt_feature(task)) \
            * layers["prompt"]
        h = np.matmul(self._inputs, np.stack([layers["wait"], task_row]), out=self._hidden)
        h += self._first
        for w, b in layers["rest"]:
            np.maximum(h, np.float32(0.0), out=h)   # relu on the hidden layers
            h = h @ w
            h += b
        return h[:, 0].astype(np.float64), np.expm1(np.maximum(h[:, 1], 0.0), dtype=np.float64)

    # -- the offloader -------------------------------------------------------------------

    def choose(self, task, options):
        if self._rng is None:
            self._start()
        if self._same.changed(options):
            self._widen(options)
            self._first = None
        wait = np.log1p(options.wait_s)   # >= 0: service starts at arrival or later
        explore = self._net is None or self._seen < self.warmup or \
            (self.epsilon and self._rng.random() < self.epsilon)
        rows = np.flatnonzero(self._guard.explorable(options)) if explore else ()
        if len(rows):
            row = int(rows[self._rng.integers(len(rows))])
        elif self._net is None:   # nothing to explore, nothing learnt: the quickest
            row = int(np.argmin(options.latency_s))
        else:
            quality, latency = self.predict(task, options, wait)
            quality -= self.latency_weight * latency
            quality -= self.load_weight * options.wait_s
            row = int(np.argmax(quality))
        self._chosen[task.index] = (float(wait[row]), float(options.latency_s[row]))
        return row

    def observe(self, outcomes):
        if self._rng is None:
            return
        for outcome, chosen in self._guard.served(outcomes, self._chosen, 1):
            task = outcome.task
            self._history.append((task.type_index, _prompt_feature(task), outcome.node,
                                  outcome.model, chosen[0], outcome.quality,
                                  max(outcome.latency_s, 0.0)))
            self._pending += 1
            self._seen += 1
        if len(self._history) > self.memory:
            del self._history[:len(self._history) - self.memory]
            self._pending = min(self._pending, self.memory)
        if self._pending >= max(self.batch_size, self._seen // 16):
            self._fit()


def _capacity(index):
    """One-hot width covering ``index`` with room to spare (a power of two, >= 16)."""
    width = 16
    while width <= index:
        width *= 2
    return width
