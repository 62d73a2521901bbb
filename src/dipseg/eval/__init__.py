"""Evaluation: datasets, the VOC metrics, and the resumable benchmark (``dipseg bench``).

Modules, bottom to top (no cycles): :mod:`~dipseg.eval.datasets` and
:mod:`~dipseg.eval.metrics`; :mod:`~dipseg.eval.specs` (what a sweep runs);
:mod:`~dipseg.eval.jobs` (one job); :mod:`~dipseg.eval.results` (``results.jsonl`` and its
lock); :mod:`~dipseg.eval.report` (summaries and figures); :mod:`~dipseg.eval.executors`
(local processes, Ray); :mod:`~dipseg.eval.runner` (:func:`run_bench`, the driver).
"""
