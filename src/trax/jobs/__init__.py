"""Jobs: persisted batches that survive crashes, run locally or by workers on many machines."""

from __future__ import annotations

from trax.jobs.store import STATUSES, Batch, BatchCounts, Job, JobStore, SqlJobStore

__all__ = ["STATUSES", "Batch", "BatchCounts", "Job", "JobStore", "SqlJobStore"]
