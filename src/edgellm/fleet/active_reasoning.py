"""``ActiveReasoning``: the original distribution center's forest predictor, one random
forest per (node, model) option predicting the task's quality and latency there,
refitted every few rounds, with epsilon-greedy exploration.

Per (node, model) pair (an arm, created the first time an option shows it: caching
rounds add and remove pairs), a scikit-learn ``RandomForestRegressor`` with two
outputs maps the task and the option's load to what serving it there gave:

- features: one-hot task type, log1p(prompt tokens) / 8, log1p(expected wait s);
- targets: the item score, and log1p(measured latency) - log1p(expected latency L^),
  the center's estimate's error in log space (the same scale as quality, so neither
  output dominates the forest's splits; trees cannot extrapolate, so latency is
  learnt as a correction of the center's estimate, which already grows with the load).

Choice: maximise q^ - latency_weight * l^ - load_weight * expected wait, with
l^ = expm1(log1p(L^) + e^). A pair without a forest yet (fewer than ``min_samples``
outcomes) scores the mean quality observed for the task type (all types' mean before
any) and L^: neither favoured nor shunned. Until ``warmup`` outcomes have been seen
the choice is random, afterwards random with probability ``epsilon``; random choices
go only to options worth exploring (ready, below the latency the fallback has
overridden: ``_FallbackGuard`` in learning.py).

Refits: every ``refit_every`` rounds (``observe`` calls), the pairs whose outcomes
grew by an eighth since their last fit (at least one) are refitted on their last
``memory`` outcomes: a pair's fits grow with the log of its outcomes, so that a long
run does not spend its time refitting forests on nearly the same data. A prediction
walks every tree of the options' forests at once in numpy (the forests flattened into
one node table at each refit): sklearn's ``predict`` costs milliseconds per call, a
task has up to a few dozen options.

Deterministic given ``seed`` (the exploration draws; each pair's forest is seeded
with ``seed`` and its arm id); state changes only in ``choose`` and ``observe``.
"""

from collections import deque

import numpy as np

from edgellm.fleet.learning import (_ArmTable, _FallbackGuard, _number, _prompt_feature,
                                    _SameOptions)
from edgellm.fleet.offloaders import Offloader
from edgellm.tasks.registry import task_types


class ForestTable:
    """Random forests flattened into one node table, walked for many rows at once."""

    def __init__(self, forests):
        """``forests``: arm id -> fitted ``RandomForestRegressor`` (2 outputs)."""
        arms = max(forests, default=-1) + 1
        trees = max((len(f.estimators_) for f in forests.values()), default=1)
        # node 0: a leaf worth 0 that the missing trees of a smaller forest start at
        self.roots = np.zeros((arms, trees), dtype=np.int64)
        self.count = np.zeros(arms)
        left, right, feature, threshold, value = [[0]], [[0]], [[0]], [[np.inf]], [np.zeros((1, 2))]
        offset = 1
        for arm, forest in sorted(forests.items()):
            self.count[arm] = len(forest.estimators_)
            for i, estimator in enumerate(forest.estimators_):
                tree = estimator.tree_
                leaf = tree.children_left < 0
                # a leaf points at itself: walking on from it stays there
                own = np.arange(tree.node_count) + offset
                left.append(np.where(leaf, own, tree.children_left + offset))
                right.append(np.where(leaf, own, tree.children_right + offset))
                feature.append(np.where(leaf, 0, tree.feature))
                threshold.append(tree.threshold)
                value.append(tree.value[:, :, 0])
                self.roots[arm, i] = offset
                offset += tree.node_count
        self.depth = max((e.tree_.max_depth for f in forests.values() for e in f.estimators_),
                         default=0)
        self.left, self.right = np.concatenate(left), np.concatenate(right)
        self.feature, self.threshold = np.concatenate(feature), np.concatenate(threshold)
        self.value = np.concatenate(value)

    def has(self, arms):
        """Whether each arm has a forest."""
        out = np.zeros(len(arms), dtype=bool)
        inside = arms < len(self.count)
        out[inside] = self.count[arms[inside]] > 0
        return out

    def predict(self, arms, x):
        """Each row's forest's mean prediction (rows x 2) for the rows of ``x`` (float32,
        compared as sklearn compares them) of ``arms`` that have a forest."""
        node = self.roots[arms]                          # (rows, trees)
        rows = np.arange(len(arms))[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return self.value[node].sum(axis=1) / self.count[arms][:, None]


class ActiveReasoningOffloader(Offloader):
    """Per-option random forests of quality and latency; see the module's docstring."""

    learns = True

    def __init__(self, latency_weight=0.02, load_weight=0.01, epsilon=0.1, warmup=32,
                 refit_every=2, n_estimators=10, max_depth=6, min_samples_leaf=10, min_samples=3,
                 memory=2000, seed=0):
        self.latency_weight = _number("latency_weight", latency_weight)
        self.load_weight = _number("load_weight", load_weight)
        self.epsilon = _number("epsilon", epsilon, high=1.0)
        self.warmup = int(_number("warmup", warmup))
        self.refit_every = int(_number("refit_every", refit_every, low=1))
        self.n_estimators = int(_number("n_estimators", n_estimators, low=1))
        self.max_depth = int(_number("max_depth", max_depth, low=1))
        self.min_samples_leaf = int(_number("min_samples_leaf", min_samples_leaf, low=1))
        self.min_samples = int(_number("min_samples", min_samples, low=1))
        self.memory = int(_number("memory", memory, low=1))
        self.seed = int(seed)
        self._rng = None

    # -- state, created on the first task ----------------------------------------------

    def _start(self):
        self._rng = np.random.default_rng(self.seed)
        self._types = len(task_types())
        self._table = _ArmTable()
        self._history = {}                 # arm -> the last ``memory`` features + targets
        self._seen_by = {}                 # arm -> outcomes seen
        self._fitted_on = {}               # arm -> outcomes seen at its last fit
        self._forests = {}                 # arm -> RandomForestRegressor
        self._walk = ForestTable({})
        self._quality_sum = np.zeros(self._types)
        self._quality_n = np.zeros(self._types)
        self._seen = 0
        self._rounds = 0
        self._chosen = {}                  # task index -> (arm, features, L^)
        self._guard = _FallbackGuard()
        self._same = _SameOptions()
        self._arm_rows = None

    def _x(self, task, wait):
        """Feature rows (float32, as sklearn's trees read them) of a task's options."""
        x = np.zeros((len(wait), self._types + 2), dtype=np.float32)
        x[:, task.type_index] = 1.0
        x[:, self._types] = _prompt_feature(task)
        x[:, self._types + 1] = np.log1p(wait)
        return x

    def _prior(self, type_index):
        """What an arm without a forest is expected to score: the type's mean so far."""
        if self._quality_n[type_index]:
            return self._quality_sum[type_index] / self._quality_n[type_index]
        total = self._quality_n.sum()
        return self._quality_sum.sum() / total if total else 0.0

    # -- the offloader -------------------------------------------------------------------

    def choose(self, task, options):
        if self._rng is None:
            self._start()
        if self._same.changed(options):
            self._arm_rows = self._table.lookup(options.node, options.model)
        arms = self._arm_rows
        x = self._x(task, options.wait_s)
        explore = self._seen < self.warmup or (self.epsilon and self._rng.random() < self.epsilon)
        rows = np.flatnonzero(self._guard.explorable(options)) if explore else ()
        if len(rows):
            row = int(rows[self._rng.integers(len(rows))])
        else:
            quality = np.full(len(options), self._prior(task.type_index))
            log_error = np.zeros(len(options))
            fitted = self._walk.has(arms)
            if fitted.any():
                predicted = self._walk.predict(arms[fitted], x[fitted])
                quality[fitted], log_error[fitted] = predicted[:, 0], predicted[:, 1]
            latency = np.expm1(np.log1p(options.latency_s) + log_error)
            score = quality - self.latency_weight * latency - self.load_weight * options.wait_s
            row = int(np.argmax(score))
        self._chosen[task.index] = (int(arms[row]), x[row], float(options.latency_s[row]))
        return row

    def observe(self, outcomes):
        if self._rng is None:
            return
        for outcome, (arm, x, expected) in self._guard.served(outcomes, self._chosen, 2):
            error = np.log1p(max(outcome.latency_s, 0.0)) - np.log1p(expected)
            if arm not in self._history:
                self._history[arm] = deque(maxlen=self.memory)
            self._history[arm].append(np.concatenate([x, [outcome.quality, error]]))
            self._seen_by[arm] = self._seen_by.get(arm, 0) + 1
            self._quality_sum[outcome.task.type_index] += outcome.quality
            self._quality_n[outcome.task.type_index] += 1
            self._seen += 1
        self._rounds += 1
        if self._rounds % self.refit_every == 0:
            self._refit()

    def _refit(self):
        # heavy (scikit-learn, about 1.7 s to import): only this offloader needs it
        from sklearn.ensemble import RandomForestRegressor
        refit = []
        for arm, seen in sorted(self._seen_by.items()):
            last = self._fitted_on.get(arm, 0)
            if seen >= self.min_samples and seen - last >= max(1, last // 8):
                refit.append(arm)
        for arm in refit:
            data = np.array(self._history[arm])
            forest = RandomForestRegressor(n_estimators=self.n_estimators,
                                           max_depth=self.max_depth,
                                           min_samples_leaf=self.min_samples_leaf,
                                           random_state=(self.seed * 100003 + arm) % 2**32)
            self._forests[arm] = forest.fit(data[:, :-2], data[:, -2:])
            self._fitted_on[arm] = self._seen_by[arm]
        if refit:
            self._walk = ForestTable(self._forests)
