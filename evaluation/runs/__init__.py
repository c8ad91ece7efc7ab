"""Running an evaluation: plan, generate, score, summarise; storage-agnostic and resumable.

- ``runner``: the run itself, over any :class:`~evaluation.runs.store.ItemStore`;
- ``store``: the storage protocol (Postgres implements it in ``evaluation.repository``);
- ``generation``: a backend as the runner's ``generate`` call, batch sizes and queues by backend kind;
- ``results``: whatever a backend returned, as a status and a text;
- ``fingerprints``: the keys that make resuming safe;
- ``summary``: a run's summary by category and axis.
"""
