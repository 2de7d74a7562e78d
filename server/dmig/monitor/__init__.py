"""Live monitoring while a migration runs: probes, metrics, thresholds with actions, timeline and report.

The executor builds a ``Monitor`` from the plan's ``monitoring`` object, asks it for a verdict
between batches (continue / warn / pause / rollback) and waits on it while paused; the monitor
keeps the metrics timeline with the run and renders the run report.
"""
