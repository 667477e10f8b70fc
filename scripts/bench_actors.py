"""The people the benchmarks act as: one per role a step of the program needs (names say `bench`)."""

from __future__ import annotations

from ledger.values import Actor, Role

ADMIN = Actor("bench-admin", Role.ADMIN, "Bench Admin")
MFG = Actor("bench-mfg", Role.MANUFACTURING, "Bench Maker")
MFG2 = Actor("bench-mfg2", Role.MANUFACTURING, "Bench Checker")
"""The second person who checks a manufacturing step."""
QA = Actor("bench-qa", Role.QA, "Bench QA")
QP = Actor("bench-qp", Role.QP, "Bench QP")
DEPOT = Actor("bench-depot", Role.DEPOT, "Bench Depot")
SITE = Actor("bench-site", Role.SITE, "Bench Site")
