"""``DQN``: the original distribution center's deep Q-network offloader, in numpy.

State s: the task (one-hot task type, log1p(prompt tokens) / 8) and the fleet's load
(the mean log1p(expected wait s) over the options, the share of options ready).
Action a: one (node, model) option. Reward, per served task:

    r = quality - latency_weight * latency_s - load_weight * wait_s
        - resource_weight * max(latency_s - wait_s, 0)

quality is the item score, latency_s the measured end-to-end latency (it carries the
prompt's and the answer's transfer over the node's link), wait_s the queue and the
wait for a model still transferring or loading (the model transfer time), and the
last term the time past that wait, in service and on the link (the resource the task
used; weight 0 by default, as the latency term already charges it once).

**Changing action sets.** Caching rounds add and remove (node, model) pairs, so the
network does not have one output per action: it scores each option from the state
and the option's identity (one-hot node, one-hot model), Q(s, a) = net([s, a]) - c(a),
over however many options a task has. A node or model index beyond the one-hot
widths widens them by zero input weights (what was learnt stays exact). c(a) is the
reward's latency, wait and resource terms on the center's expected figures for the
option: a known offset (as LinUCB's), so the net learns quality and the error of the
center's estimate, not arithmetic the center already does. (With the expected wait
and latency as inputs as well, the net extrapolated to the long waits of models still
loading, which it had never seen, chose them, and the fallback sent 16.8% of the small
topology's tasks to the cloud; through c(a) they count exactly.)

**Learning.** Each placement is a transition to the next placement's state (the next
task and its options; the fleet is one continuing episode). Target
y = r + gamma * max over a' of Q_target(s', a'), with a target network copied from
the online one every ``target_every`` gradient steps; Huber loss, Adam. Transitions
go to a replay buffer of the last ``memory`` placements when their round closes
(``observe``); then ``updates`` minibatch steps per new transition, minibatches of
``batch_size`` drawn uniformly (with replacement) from the buffer. Tasks the SLO
fallback sent to the cloud teach nothing (the option did not serve them), but their
placement is still the state that follows the one before.

**Exploration.** epsilon-greedy, epsilon = max(epsilon_end, epsilon_start *
epsilon_decay ** n) with n the placements of the task's type so far: a schedule per
task type, because the shipped workload's mix arrives type after type and one
schedule for all would be spent before the later types come. Random choices go only
to options worth exploring (ready, below the latency the fallback has overridden:
``_FallbackGuard`` in learning.py).

Deterministic given ``seed`` (initial weights, exploration, minibatches); state
changes only in ``choose`` and ``observe``, so ``serve`` and ``serve_batch`` agree.
"""

import math

import numpy as np

from edgellm.fleet.learning import (_capacity, _FallbackGuard, _number, _prompt_feature,
                                    _SameOptions)
from edgellm.fleet.offloaders import Offloader
from edgellm.tasks.registry import task_types

STATE = 3      # besides the type one-hot: prompt, mean log1p(wait), ready share


def layer_sizes(name, value):
    """Hidden layer sizes from a grid value: an int or a list of ints."""
    value = (value,) if isinstance(value, (int, float, str)) else value
    try:
        sizes = tuple(int(h) for h in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be layer sizes, got {value!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"{name} must be positive layer sizes, got {value!r}")
    return sizes


class QNetwork:
    """A ReLU MLP with one output, trained by Adam on the Huber loss (manual backprop).

    Its inputs are mostly one-hot: a row is given as ``hot`` (the indices of its ones)
    and ``dense`` (the values of inputs ``dense_at`` onwards), and the first layer
    gathers the weight rows of the ones, which costs a fraction of a dense product
    over every option of a minibatch's next states."""

    def __init__(self, inputs, hidden, rng, dense_at):
        sizes = (inputs, *hidden, 1)
        # He initialisation for ReLU layers; a small last layer: Q starts near 0
        self.w = [rng.normal(0.0, math.sqrt(2.0 / a), (a, b)) for a, b in zip(sizes, sizes[1:])]
        self.w[-1] *= 0.1
        self.b = [np.zeros(b) for b in sizes[1:]]
        self.dense_at = dense_at
        self._m = [np.zeros_like(p) for p in self.w + self.b]
        self._v = [np.zeros_like(p) for p in self.w + self.b]
        self._t = 0

    def copy_from(self, other):
        self.w = [p.copy() for p in other.w]
        self.b = [p.copy() for p in other.b]

    def forward(self, hot, dense, keep=False):
        first = self.w[0]
        h = first[hot[:, 0]]
        for j in range(1, hot.shape[1]):
            h += first[hot[:, j]]
        h += dense @ first[self.dense_at:self.dense_at + dense.shape[1]]
        h += self.b[0]
        kept = []
        for w, b in zip(self.w[1:], self.b[1:]):
            np.maximum(h, 0.0, out=h)
            kept.append(h)
            h = h @ w + b
        out = h[:, 0]
        return (out, kept) if keep else out

    def step(self, hot, dense, target, learning_rate):
        """One Adam step on the mean Huber loss (delta 1) of Q against ``target``."""
        q, kept = self.forward(hot, dense, keep=True)
        grad = (np.clip(q - target, -1.0, 1.0) / len(q))[:, None]
        grads_w, grads_b = [], []
        for layer in range(len(self.w) - 1, 0, -1):
            grads_w.append(kept[layer - 1].T @ grad)
            grads_b.append(grad.sum(axis=0))
            grad = (grad @ self.w[layer].T) * (kept[layer - 1] > 0)
        first = np.zeros_like(self.w[0])
        for j in range(hot.shape[1]):
            np.add.at(first, hot[:, j], grad)
        first[self.dense_at:self.dense_at + dense.shape[1]] += dense.T @ grad
        grads = [first] + grads_w[::-1] + [grad.sum(axis=0)] + grads_b[::-1]
        self._t += 1
        beta1, beta2 = 0.9, 0.999
        scale = learning_rate * math.sqrt(1 - beta2 ** self._t) / (1 - beta1 ** self._t)
        for param, g, m, v in zip(self.w + self.b, grads, self._m, self._v):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            param -= scale * m / (np.sqrt(v) + 1e-8)

    def insert_inputs(self, at, count):
        """``count`` new inputs before input ``at``, with zero weights (outputs unchanged)."""
        for params in (self.w, self._m, self._v):   # index 0: the first layer's weights
            params[0] = np.insert(params[0], [at] * count, 0.0, axis=0)


class DqnOffloader(Offloader):
    """Deep Q-learning over (node, model) options; see the module's docstring."""

    learns = True

    def __init__(self, latency_weight=0.02, load_weight=0.01, resource_weight=0.0, gamma=0.5,
                 hidden=(64,), learning_rate=0.001, batch_size=64, updates=1.0, memory=5000,
                 target_every=50, epsilon_start=1.0, epsilon_end=0.01, epsilon_decay=0.95,
                 seed=0):
        self.latency_weight = _number("latency_weight", latency_weight)
        self.load_weight = _number("load_weight", load_weight)
        self.resource_weight = _number("resource_weight", resource_weight)
        self.gamma = _number("gamma", gamma, high=0.99)
        self.hidden = layer_sizes("hidden", hidden)
        self.learning_rate = _number("learning_rate", learning_rate, strict=True)
        self.batch_size = int(_number("batch_size", batch_size, low=1))
        self.updates = _number("updates", updates)
        self.memory = int(_number("memory", memory, low=2))
        self.target_every = int(_number("target_every", target_every, low=1))
        self.epsilon_start = _number("epsilon_start", epsilon_start, high=1.0)
        self.epsilon_end = _number("epsilon_end", epsilon_end, high=self.epsilon_start)
        self.epsilon_decay = _number("epsilon_decay", epsilon_decay, strict=True, high=1.0)
        self.seed = int(seed)
        self._rng = None

    # -- state, created on the first task ----------------------------------------------

    def _start(self):
        self._rng = np.random.default_rng(self.seed)
        self._types = len(task_types())
        self._nodes = self._models = 0        # one-hot widths, grown as indices appear
        self._dense = self._types + STATE
        self._net = QNetwork(self._dense, self.hidden, self._rng, dense_at=self._types)
        self._target = QNetwork(self._dense, self.hidden, self._rng, dense_at=self._types)
        self._target.copy_from(self._net)
        self._tried = np.zeros(self._types, dtype=np.int64)   # placements per task type
        self._count = 0                       # placements so far: the transitions' clock
        self._oldest = 0                      # the oldest placement remembered
        self._placed = {}                     # placement -> (state, options, row)
        self._by_task = {}                    # task index -> placement
        self._rewards = {}                    # placement -> reward, waiting for s'
        self._buffer = np.empty(0, dtype=np.int64)   # placements with r and s' known
        self._buffer_r = np.empty(0)
        self._steps = 0
        self._guard = _FallbackGuard()
        self._same = _SameOptions()

    def _widen(self, options):
        nodes = max(self._nodes, _capacity(int(options.node.max())))
        models = max(self._models, _capacity(int(options.model.max())))
        for net in (self._net, self._target):
            net.insert_inputs(self._dense + self._nodes, nodes - self._nodes)
            net.insert_inputs(self._dense + nodes + self._models, models - self._models)
        self._nodes, self._models = nodes, models

    # -- features --------------------------------------------------------------------

    def _state(self, task, options):
        wait = np.log1p(options.wait_s)
        return (task.type_index, _prompt_feature(task), float(wait.mean()),
                float(options.ready.mean()))

    def _features(self, placements, chosen=False):
        """Input rows of ``placements`` ((state, options, row) each): every option of
        each, one placement after another, or with ``chosen`` only the option taken.
        Returns the rows as ``hot`` and ``dense`` (QNetwork), the row count per
        placement and the options' columns."""
        keys = ("node", "model", "wait", "latency")
        if chosen:
            sizes = np.ones(len(placements), dtype=np.int64)
            columns = {k: np.array([p[1][k][p[2]] for p in placements]) for k in keys}
        else:
            sizes = np.array([len(p[1]["node"]) for p in placements])
            columns = {k: np.concatenate([p[1][k] for p in placements]) for k in keys}
        states = np.repeat(np.array([p[0] for p in placements], dtype=np.float64), sizes, axis=0)
        hot = np.column_stack([states[:, 0].astype(np.int64), self._dense + columns["node"],
                               self._dense + self._nodes + columns["model"]])
        return hot, states[:, 1:], sizes, columns

    def _cost(self, latency, wait):
        """c(a): the reward's latency, wait and resource terms of the expected figures."""
        return self.latency_weight * latency + self.load_weight * wait \
            + self.resource_weight * np.maximum(latency - wait, 0.0)

    # -- the offloader -------------------------------------------------------------------

    def choose(self, task, options):
        if self._rng is None:
            self._start()
        if self._same.changed(options):
            self._widen(options)
        t = task.type_index
        epsilon = max(self.epsilon_end, self.epsilon_start * self.epsilon_decay ** self._tried[t])
        self._tried[t] += 1
        placement = (self._state(task, options),
                     {"node": options.node, "model": options.model, "wait": options.wait_s,
                      "latency": options.latency_s}, None)
        rows = ()
        if self._rng.random() < epsilon:
            rows = np.flatnonzero(self._guard.explorable(options))
        if len(rows):
            row = int(rows[self._rng.integers(len(rows))])
        else:
            hot, dense, _, _ = self._features([placement])
            q = self._net.forward(hot, dense) - self._cost(options.latency_s, options.wait_s)
            row = int(np.argmax(q))
        self._placed[self._count] = placement[:2] + (row,)
        self._by_task[task.index] = self._count
        self._count += 1
        return row

    def observe(self, outcomes):
        if self._rng is None:
            return
        chosen = {}   # task index -> (placement, its expected latency), as the guard reads
        for outcome in outcomes:
            k = self._by_task.pop(outcome.task.index, None)
            if k is not None and k in self._placed:
                _, columns, row = self._placed[k]
                chosen[outcome.task.index] = (k, float(columns["latency"][row]))
        for outcome, (k, _) in self._guard.served(outcomes, chosen, 1):
            wait, latency = max(outcome.wait_s, 0.0), max(outcome.latency_s, 0.0)
            self._rewards[k] = outcome.quality - self._cost(latency, wait)
        # a transition is complete once the next placement (its s') exists
        complete = sorted(k for k in self._rewards if k + 1 < self._count)
        if complete:
            self._buffer = np.concatenate([self._buffer, complete])
            self._buffer_r = np.concatenate([self._buffer_r,
                                             [self._rewards.pop(k) for k in complete]])
        self._forget()
        if len(self._buffer) >= self.batch_size:
            for _ in range(int(round(self.updates * len(complete)))):
                self._train()

    def _forget(self):
        """Keep the last ``memory`` placements (a transition needs its own and the next)."""
        oldest = self._count - self.memory
        if oldest <= self._oldest:
            return
        for k in range(self._oldest, oldest):   # placements are numbered in order
            self._placed.pop(k, None)
            self._rewards.pop(k, None)
        self._oldest = oldest
        keep = self._buffer >= oldest
        self._buffer, self._buffer_r = self._buffer[keep], self._buffer_r[keep]

    def _train(self):
        picked = self._rng.integers(len(self._buffer), size=self.batch_size)
        placements = self._buffer[picked]
        target = self._buffer_r[picked].copy()
        if self.gamma:
            following = [self._placed[k + 1] for k in placements]
            hot, dense, sizes, columns = self._features(following)
            q = self._target.forward(hot, dense) - self._cost(columns["latency"],
                                                              columns["wait"])
            target += self.gamma * np.maximum.reduceat(q, np.cumsum(sizes) - sizes)
        hot, dense, _, columns = self._features([self._placed[k] for k in placements],
                                                chosen=True)
        target += self._cost(columns["latency"], columns["wait"])
        self._net.step(hot, dense, target, self.learning_rate)
        self._steps += 1
        if self._steps % self.target_every == 0:
            self._target.copy_from(self._net)
