"""The synthetic patients of the clinical spec (§5, P01-P10) and its negative cases (a)-(e), as data Bundles.

The demo applies the pathway to them and the scenario tests check the spec's expected output on them, so both
use exactly the same data. Dates are relative to the `now` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from carepath.content import codes
from carepath.content.bundles import Obs, PatientBundle, coding, concept, quantity

FOUR_METS = (codes.LUNG_METS, codes.BONE_METS, codes.BRAIN_METS, codes.LIVER_METS)
BIOMARKER_DAYS_AGO = 30  # §5: "Biomarker Observations dated 30 days ago unless stated"
EARLIER_WEIGHT_DAYS_AGO = 90  # §5: two weights, about 3 months earlier and now


def ecog(grade: int, status: str = "final", days_ago: float = 1) -> Obs:
    answer = concept(codes.LOINC, codes.ECOG_ANSWERS[grade])
    return Obs(codes.LOINC, codes.ECOG, {"valueInteger": grade}, days_ago, status, interpretation=answer)


def pain(score: int, as_integer: bool = False, status: str = "final", days_ago: float = 1) -> Obs:
    value = {"valueInteger": score} if as_integer else {"valueQuantity": quantity(score, "{score}")}
    return Obs(codes.LOINC, codes.PAIN, value, days_ago, status)


def distress(score: int) -> Obs:
    return Obs(codes.LOCAL, codes.DISTRESS_THERMOMETER, {"valueInteger": score}, 1)


def weights(before_kg: int, now_kg: int) -> tuple[Obs, Obs]:
    return (
        Obs(codes.LOINC, codes.BODY_WEIGHT, {"valueQuantity": quantity(before_kg, "kg")}, EARLIER_WEIGHT_DAYS_AGO),
        Obs(codes.LOINC, codes.BODY_WEIGHT, {"valueQuantity": quantity(now_kg, "kg")}, 0),
    )


def variant(gene: str, present: bool = True, phgvs: str | None = None, days_ago: float = BIOMARKER_DAYS_AGO) -> Obs:
    """A genomic variant (§1.6): gene as an HGNC id, protein change as pHGVS; components matched by LOINC code."""
    components = [{"code": concept(codes.LOINC, codes.GENE_STUDIED), "valueCodeableConcept": concept(codes.HGNC, gene)}]
    if phgvs:
        components.append(
            {"code": concept(codes.LOINC, codes.PROTEIN_HGVS), "valueCodeableConcept": concept(codes.HGVS, phgvs)}
        )
    answer = codes.VARIANT_PRESENT if present else codes.VARIANT_ABSENT
    value = {"valueCodeableConcept": concept(codes.LOINC, answer)}
    return Obs(codes.LOINC, codes.VARIANT, value, days_ago, components=tuple(components))


def coded_result(loinc: str, answer: str, days_ago: float = BIOMARKER_DAYS_AGO) -> Obs:
    return Obs(codes.LOINC, loinc, {"valueCodeableConcept": concept(codes.LOINC, answer)}, days_ago)


def measured(loinc: str, value: int, unit: str) -> Obs:
    return Obs(codes.LOINC, loinc, {"valueQuantity": quantity(value, unit)}, BIOMARKER_DAYS_AGO)


def pdl1(percent: int) -> Obs:
    return measured(codes.PDL1_TPS, percent, "%")


def tmb(mutations_per_mb: int) -> Obs:
    return measured(codes.TMB, mutations_per_mb, "1/1000000{Base}")


@dataclass(frozen=True)
class PatientCase:
    """One synthetic patient of §5: the common data items plus the scenario's own observations."""

    key: str
    title: str
    primary: str
    metastases: tuple[str, ...]
    observations: tuple[Obs, ...]
    termination: str | None = codes.NO_RESPONSE
    status_history: tuple[tuple[str, float], ...] = ((codes.WORSENED, 5),)  # (trend code, days ago)

    def bundle(self, now: datetime) -> dict[str, Any]:
        builder = PatientBundle(self.key, f"{self.key} {self.title}", now)
        builder.patient()
        primary = builder.condition(self.primary, codes.PRIMARY_PROFILE)
        for site in self.metastases:
            builder.condition(site, codes.SECONDARY_PROFILE, related=primary)
        for trend, days_ago in self.status_history:
            builder.observation(_disease_status(trend, days_ago), focus=primary)
        if self.termination:
            builder.stopped_medication(self.termination)
        for obs in self.observations:
            builder.observation(obs)
        return builder.bundle()

    def upsert(self, now: datetime) -> dict[str, Any]:
        """The record as a transaction Bundle of PUTs with its own ids: storing it twice duplicates nothing."""
        entries = [{"resource": e["resource"],
                    "request": {"method": "PUT", "url": f"{e['resource']['resourceType']}/{e['resource']['id']}"}}
                   for e in self.bundle(now)["entry"]]  # fmt: skip
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _disease_status(trend: str, days_ago: float) -> Obs:
    evidence = {"url": codes.EVIDENCE_TYPE_EXT, "valueCodeableConcept": concept(codes.SNOMED, codes.IMAGING)}
    value = {"valueCodeableConcept": {"coding": [coding(codes.SNOMED, trend)]}}
    return Obs(
        codes.LOINC, codes.DISEASE_STATUS, value, days_ago, extensions=(evidence,), profile=codes.DISEASE_STATUS_PROFILE
    )


def _vitals(ecog_grade: int, pain_score: int, dt: int, before_kg: int, now_kg: int) -> tuple[Obs, ...]:
    return (ecog(ecog_grade), pain(pain_score), distress(dt), *weights(before_kg, now_kg))


KRAS_G12D = variant("HGNC:6407", phgvs="p.Gly12Asp")
MSI_STABLE = coded_result(codes.MSI, codes.MSI_STABLE)

SCENARIOS: tuple[PatientCase, ...] = (
    PatientCase(
        "P01", "NSCLC, EGFR exon 19 deletion, progression after platinum", "254637007", FOUR_METS,
        (*_vitals(1, 3, 3, 70, 68), variant("HGNC:3236", phgvs="NP_005219.2:p.Glu746_Ala750del"), pdl1(20)),
    ),
    PatientCase(
        "P02", "Melanoma, PD-L1 positive", "372244006", FOUR_METS,
        (*_vitals(1, 2, 2, 80, 79), variant("HGNC:1097", present=False), pdl1(5)),
    ),
    PatientCase(
        "P03", "Colorectal cancer, liver oligometastasis", "363406005", (codes.LIVER_METS,),
        (*_vitals(0, 1, 2, 75, 74), KRAS_G12D, MSI_STABLE),
    ),
    PatientCase(
        "P04", "Prostate cancer, single bone metastasis", "399068003", (codes.BONE_METS,),
        (*_vitals(1, 5, 5, 82, 81), coded_result(codes.MSI, codes.MSI_STABLE, days_ago=200)),
        termination=codes.NOT_TOLERATED,
    ),
    PatientCase(
        "P05", "HER2-positive breast cancer", "254837009", FOUR_METS,
        (*_vitals(1, 2, 3, 60, 60), coded_result(codes.HER2_INTERPRETATION, codes.POSITIVE)),
    ),
    PatientCase(
        "P06", "Thyroid cancer, RET fusion", "363478007", FOUR_METS,
        (*_vitals(1, 2, 2, 65, 64), variant("HGNC:9967")), termination=codes.NOT_TOLERATED,
    ),
    PatientCase(
        "P07", "Frail patient, ECOG 3", "363358000", FOUR_METS, _vitals(3, 4, 6, 70, 66),
        termination=codes.NOT_TOLERATED, status_history=((codes.WORSENED, 60),),
    ),
    PatientCase(
        "P08", "Severe pain 8/10 and 10 % weight loss", "363418001", FOUR_METS, _vitals(2, 8, 7, 70, 63),
    ),
    PatientCase(
        "P09", "MSI-high colorectal cancer", "363406005", FOUR_METS,
        (*_vitals(1, 3, 3, 72, 71), coded_result(codes.MSI, codes.MSI_HIGH), tmb(40)),
    ),
    PatientCase(
        "P10", "No actionable marker, good performance status", "363418001", FOUR_METS,
        (*_vitals(0, 1, 1, 70, 70), KRAS_G12D, MSI_STABLE, tmb(2), pdl1(0)),
    ),
)  # fmt: skip

_BY_KEY = {case.key: case for case in SCENARIOS}


def _without(observations: tuple[Obs, ...], code: str) -> tuple[Obs, ...]:
    return tuple(obs for obs in observations if obs.code != code)


def _negative_cases() -> tuple[PatientCase, ...]:
    p01, p07, p08, p10 = (_BY_KEY[key] for key in ("P01", "P07", "P08", "P10"))
    # (c) uses P07 (no recent imaging, no recent biomarkers) plus an old EGFR variant, so that S03, S04 and S17
    # would all be generated if ECOG 4 did not suppress them.
    old_driver = variant("HGNC:3236", days_ago=400)
    entered_in_error = (ecog(4, "entered-in-error", days_ago=0), pain(9, status="entered-in-error", days_ago=0))
    return (
        replace(
            p10, key="NA", title="Negative (a): stable disease after an earlier progression, no failed treatment",
            termination=None, status_history=((codes.WORSENED, 60), (codes.STABLE, 5)),
        ),
        replace(p01, key="NB", title="Negative (b): P01 without any ECOG or Karnofsky score",
                observations=_without(p01.observations, codes.ECOG)),
        replace(p07, key="NC", title="Negative (c): P07 at ECOG 4 with an old EGFR variant",
                observations=(*_without(p07.observations, codes.ECOG), ecog(4), old_driver)),
        replace(p08, key="ND", title="Negative (d): P08 with pain recorded as valueInteger",
                observations=(*_without(p08.observations, codes.PAIN), pain(8, as_integer=True))),
        replace(p10, key="NE", title="Negative (e): P10 plus newer entered-in-error ECOG 4 and pain 9",
                observations=(*p10.observations, *entered_in_error)),
    )  # fmt: skip


NEGATIVES: tuple[PatientCase, ...] = _negative_cases()
ALL_CASES: tuple[PatientCase, ...] = SCENARIOS + NEGATIVES
_ALL_BY_KEY = {case.key: case for case in ALL_CASES}


def sample_case(key: str) -> PatientCase:
    """The case `P01`..`P10` or `NA`..`NE` (negative cases a-e)."""
    return _ALL_BY_KEY[key]


def sample_patients(now: datetime) -> list[dict[str, Any]]:
    """The data Bundles of all sample patients (P01-P10, then the negative cases), dated relative to `now`."""
    return [case.bundle(now) for case in ALL_CASES]
