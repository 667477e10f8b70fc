"""Lotline's read side: read models fed from the ledger's event log, each answering with plain data.

`projections.runner.ProjectionRunner` applies the log to every read model, exactly once, a page of
events per transaction; the read models are `genealogy`, `recall`, `inventory`, `custody` and `audit`.
`epcis_index` is the EPCIS query index: a read model too, but fed by the EPCIS adapter (`epcis/`),
which maps the chain's steps to EPCIS events; the read side imports nothing of that adapter.
"""
