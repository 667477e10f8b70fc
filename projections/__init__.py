"""Lotline's read side: read models fed from the ledger's event log, each answering with plain data.

`projections.runner.ProjectionRunner` applies the log to every read model, exactly once, a page of
events per transaction; the read models are `genealogy`, `recall`, `inventory`, `custody` and `audit`.
"""
