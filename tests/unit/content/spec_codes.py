"""Every code the clinical specification lists, by system, with the section that lists it.

Source: shared/clinical/treatment-failure-pathway.md. The shipped content and the sample patients may use these
codes and no others ("never invent a code"); a test checks every coding and every code literal in a FHIRPath
expression against this list.
"""

from __future__ import annotations

from carepath.content import codes

SPEC_CODES: dict[str, dict[str, str]] = {
    codes.SNOMED: {
        "271299001": "§1.2", "359746009": "§1.2", "268910001": "§1.2", "363679005": "§1.2, §2 S03",
        "254637007": "§1.3", "363358000": "§1.3", "372244006": "§1.3", "363406005": "§1.3", "399068003": "§1.3",
        "254837009": "§1.3", "363478007": "§1.3", "363418001": "§1.3", "94381002": "§1.3", "94222008": "§1.3",
        "94225005": "§1.3", "94391008": "§1.3",
        "266721009": "§1.5", "407563006": "§1.5", "105480006": "§1.5", "419620001": "§1.5",
        "306237005": "§2 S06", "306265007": "§2 S07b", "308459004": "§2 S09", "103699006": "§2 S11",
        "308440001": "§2 S12", "711281004": "§2 S13", "183541002": "§2 S14", "306313008": "§2 S14",
        "306318004": "§2 S14", "306256000": "§2 S15",
        "310512001": "§5b", "763292005": "§5b", "78703002": "§5b", "309381001": "§5b", "24590004": "§5b",
        "66862007": "§5b", "61207006": "§5b", "309359006": "§5b", "224556006": "§5b", "309337009": "§5b",
        "224552008": "§5b", "768820003": "§5b", "59944000": "§5b", "309415001": "§5b", "224598009": "§5b",
    },
    codes.LOINC: {
        "97509-4": "§1.1", "89247-1": "§1.4", "89243-0": "§1.4", "72514-3": "§2 S07", "29463-7": "§2 S10",
        "101807-6": "§2 S10", "LA27538-0": "§2 S10", "51969-4": "§2 S04", "85232-7": "§2 S05, S19",
        "69548-6": "§1.6", "48018-6": "§1.6", "48005-3": "§1.6", "LA9633-4": "§1.6", "LA9634-2": "§1.6",
        "83053-9": "§1.6", "83052-1": "§1.6", "81695-9": "§1.6", "LA26203-2": "§1.6", "LA14122-8": "§1.6",
        "94076-7": "§1.6", "48676-1": "§1.6", "85319-2": "§1.6", "78205-2": "§1.6", "85299-6": "§1.6",
        "LA6576-8": "§1.6",
        "LA9622-7": "§1.4", "LA9623-5": "§1.4", "LA9624-3": "§1.4", "LA9625-0": "§1.4", "LA9626-8": "§1.4",
        "LA9627-6": "§1.4",
    },
    codes.HGNC: {
        "HGNC:3236": "§1.6", "HGNC:427": "§1.6", "HGNC:10261": "§1.6", "HGNC:9967": "§1.6", "HGNC:8031": "§1.6",
        "HGNC:8032": "§1.6", "HGNC:8033": "§1.6", "HGNC:3430": "§1.6", "HGNC:1097": "§1.6", "HGNC:6407": "§1.6",
    },
    codes.HGVS: {"NP_005219.2:p.Glu746_Ala750del": "§5 P01", "p.Gly12Asp": "§5 P03, P10"},
    codes.LOCAL: {
        "gp-notify": "§2 S01", "ps-reassessment": "§2 S02", "tumor-board-review": "§2 S05",
        "pain-assessment": "§2 S07", "distress-screening": "§2 S08", "distress-thermometer": "§2 S08",
        "nutrition-screening": "§2 S10", "immunotherapy-eligibility-review": "§2 S16",
        "targeted-therapy-review": "§2 S17", "clinical-trial-screening": "§2 S18", "palliative-focus": "§4.3",
        "rcp-coordinator": "§4.3 S05/S19 role, no §5b code", "clinical-trial-coordinator": "§4.3 S18 role, no §5b code",
    },
    "http://terminology.hl7.org/CodeSystem/plan-definition-type": {"clinical-protocol": "§4.1"},
    "http://terminology.hl7.org/CodeSystem/communication-category": {"notification": "§2 S01, S19"},
    "http://hl7.org/fhir/CodeSystem/task-code": {"fulfill": "§2"},
    codes.CONDITION_CLINICAL: {"active": "§4.2 %sec (clinicalStatus active)"},
}  # fmt: skip

# Protein-change (pHGVS) fragments that %driver looks for (§4.2): text matched inside an HGVS code, not codes.
SPEC_HGVS = {"Val600Glu", "V600E", "Gly12Cys", "G12C"}


def allowed(system: str, code: str) -> bool:
    return code in SPEC_CODES.get(system, {})


def all_codes() -> set[str]:
    return {code for table in SPEC_CODES.values() for code in table}
