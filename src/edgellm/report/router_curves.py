"""Learned routers fitted on the train split of an outcome set and swept over its
test split: their curves, figures (APGR, CPT, AIQ) and threshold calibration, next
to the random and oracle baselines on the same test items."""

import time
from dataclasses import dataclass, field

import numpy as np

from edgellm.errors import ConfigError
from edgellm.metrics.routing_curves import (
    aiq_cost_range, calibrate_threshold, curve_metrics, oracle_curve, random_curve, sweep)
from edgellm.registry import UnknownSetting, check_settings
from edgellm.routing import ROUTERS
from edgellm.routing.labels import training_labels as labels_for
from edgellm.routing.scoring import ScoringRouter

DEFAULT_LABEL = "cloud_right_edge_wrong"
DEFAULT_ROUTER = "AutoRouter"  # edgellm report --outcomes without --router


@dataclass
class RouterEvaluation:
    name: str
    curve: object
    metrics: dict
    calibration: object = None  # threshold for the target share, its train/test share
    fit_seconds: float = float("nan")
    score_seconds: float = float("nan")
    selection: dict = None  # AutoRouter's: what it chose and the cross-validated APGR


@dataclass
class CurveSet:
    """Everything a report or benchmark prints for one outcome set."""

    test: object  # the OutcomeSet the curves are drawn on
    routers: list = field(default_factory=list)  # RouterEvaluation
    random: RouterEvaluation = None
    oracle: RouterEvaluation = None
    split: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # router name -> why it was left out


def learned_router_classes():
    """{name: class} of the shipped routers that can be fitted: the ScoringRouters of
    edgellm.routing.ROUTERS, in its order."""
    classes = {name: ROUTERS.get(name) for name in ROUTERS}
    return {name: cls for name, cls in classes.items() if issubclass(cls, ScoringRouter)}


def training_labels(train, label):
    """The train items' labels (edgellm.routing.labels.training_labels)."""
    return labels_for(train.edge_score, train.cloud_score, label)


def evaluate_scores(name, train_scores, test_scores, test, target_share=0.5, max_cost=None):
    curve = sweep(test_scores, test, name=name)
    calibration = None
    if train_scores is not None:
        calibration = calibrate_threshold(train_scores, target_share, test_scores)
    cost_range = aiq_cost_range(test) if max_cost is None else max_cost
    return RouterEvaluation(name, curve, curve_metrics(curve, cost_range), calibration)


def fit_and_evaluate(name, router, train, test, label, target_share=0.5):
    """Fit ``router`` on ``train`` (labels from its outcomes only), score both splits,
    evaluate on ``test``."""
    start = time.perf_counter()
    router.fit(train.samples(), training_labels(train, label))
    fitted = time.perf_counter()
    test_scores = np.asarray(router.score(test.samples()), dtype=np.float64)
    scored = time.perf_counter()
    train_scores = np.asarray(router.score(train.samples()), dtype=np.float64)
    evaluation = evaluate_scores(name, train_scores, test_scores, test, target_share)
    evaluation.fit_seconds, evaluation.score_seconds = fitted - start, scored - fitted
    report = getattr(router, "fit_report", None)
    if callable(report):
        evaluation.selection = report().get("selection")
    return evaluation


def build_router(cls, class_name, settings, label):
    """``cls`` with ``settings`` (--router-setting; an unknown one is an error naming
    the nearest) and, unless they give one, the training label: ``label`` (--label,
    default cloud_right_edge_wrong); AutoRouter chooses its label itself, among
    ``label`` only where one is given."""
    settings = dict(settings or {})
    try:
        check_settings(cls, settings, owner=class_name)
    except UnknownSetting as err:
        raise ConfigError("--router-setting", str(err)) from None
    if class_name == DEFAULT_ROUTER:
        if label is not None and "labels" not in settings:
            settings["labels"] = [label]
    else:
        settings.setdefault("label", label or DEFAULT_LABEL)
    return cls(**settings)


def baselines(test):
    """The random router (10 seeds) and the oracle on the test items."""
    cost_range = aiq_cost_range(test)
    random = random_curve(test)
    oracle = oracle_curve(test)
    return (RouterEvaluation("random", random, curve_metrics(random, cost_range)),
            RouterEvaluation("oracle", oracle, curve_metrics(oracle, cost_range)))


def evaluate_routers(outcomes, routers, label=None, train_fraction=0.5, seed=0,
                     target_share=0.5):
    """``routers``: [(name, class name, model path or None[, settings])]. A router with
    a model path is loaded (``cls.load(path)``) instead of fitted; the others are built
    with their settings (``build_router``) and fitted on train with their own label.
    Bad names, settings and routers that cannot run are one-line errors naming
    ``--router`` or ``--router-setting``."""
    train, test = outcomes.split(train_fraction, seed)
    if len(train) < 2 or len(test) < 2:
        raise ConfigError(outcomes.source, f"{len(outcomes)} items are too few to split into "
                                           f"train and test (fraction {train_fraction})")
    result = CurveSet(test, split={k: v for k, v in train.split_info.items() if k != "part"})
    available = learned_router_classes()
    for name, class_name, model_path, *rest in routers:
        settings = rest[0] if rest else {}
        cls = available.get(class_name)
        if cls is None:
            raise ConfigError("--router", f"unknown learned router {class_name!r} "
                                          f"(known: {', '.join(sorted(available))})")
        if model_path and settings:
            raise ConfigError("--router-setting", f"{name}: a saved router keeps the settings "
                                                  f"it was fitted with")
        try:
            if model_path:
                router = cls.load(model_path)
                scores = np.asarray(router.score(test.samples()), dtype=np.float64)
                train_scores = np.asarray(router.score(train.samples()), dtype=np.float64)
                result.routers.append(evaluate_scores(name, train_scores, scores, test,
                                                      target_share))
            else:
                router = build_router(cls, class_name, settings, label)
                result.routers.append(fit_and_evaluate(name, router, train, test,
                                                       router.label, target_share))
        except (ValueError, ImportError, OSError) as err:
            message = str(err)  # the routers' own messages mostly start with their name
            if not message.startswith(f"{class_name}: "):
                message = f"{class_name}: {message}"
            raise ConfigError("--router", message) from None
    result.random, result.oracle = baselines(test)
    return result
