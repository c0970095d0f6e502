"""The group level's orchestrator (``bidsad bids_dir out_dir group``).

- :mod:`bidsad.group.cross_validation`: :func:`~bidsad.group.cross_validation.run_group_level`: cohort ->
  participant-level splits -> per model, per fold training -> baselines -> pooled evaluation -> ``metrics.json``
  -> model card -> reports -> citation boilerplate.
- :mod:`bidsad.group.apply`: :func:`~bidsad.group.apply.run_apply` (``--apply-models``): an earlier run's models
  predict this dataset's participants.
- :mod:`bidsad.group.runtime`: the process-wide settings of a group run (TensorFlow logging, seeds, Keras
  precision policy, op determinism), set on entry and restored on exit.
- :mod:`bidsad.group.summary`: ``metrics.tsv`` and ``metrics.json`` (their schema).

The libraries it calls (:mod:`bidsad.learn`, :mod:`bidsad.reports`) never import it.
"""
