"""A reusable workload generator for zero-downtime rehearsals: old-shape and new-shape application
traffic against a table while a migration runs, with latency percentiles and every failed request
counted by class (see ``runner`` for the API and the reasons behind its choices).

Modules: ``runner`` (Workload: threads, rate limit, bounds, report), ``client`` (one thread's
requests and their correctness checks), ``shape`` (the table's two shapes and the statements),
``phase`` (which shape the catalog shows now), ``histogram`` (fixed-memory latency histogram),
``locks`` (lock-wait sampling on the server while the workload runs), ``report`` (models).
"""

from dmig.workload.report import WorkloadReport
from dmig.workload.runner import DEFAULT_MIX, Workload

__all__ = ["DEFAULT_MIX", "Workload", "WorkloadReport"]
