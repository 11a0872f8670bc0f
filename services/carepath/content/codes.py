"""Code systems and the codes the treatment-failure pathway reads or writes.

Every code here is listed in `shared/clinical/treatment-failure-pathway.md` (section cited per group); the
local codes live in our CodeSystem `cfp-local` (pathways/codesystem-cfp-local.json). Never add a code that the
specification does not list.
"""

from __future__ import annotations

from carepath.canonical import CODESYSTEM_LOCAL

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
HGNC = "http://www.genenames.org"
HGVS = "http://varnomen.hgvs.org"
UCUM = "http://unitsofmeasure.org"
LOCAL = CODESYSTEM_LOCAL
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"

MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
PRIMARY_PROFILE = MCODE + "mcode-primary-cancer-condition"
SECONDARY_PROFILE = MCODE + "mcode-secondary-cancer-condition"
DISEASE_STATUS_PROFILE = MCODE + "mcode-cancer-disease-status"
EVIDENCE_TYPE_EXT = MCODE + "mcode-cancer-disease-status-evidence-type"
MEDICATION_PROFILE = MCODE + "mcode-cancer-related-medication-request"
CONDITION_RELATED_EXT = "http://hl7.org/fhir/StructureDefinition/condition-related"

# §1.2 disease status trend and evidence type
WORSENED = "271299001"
STABLE = "359746009"
IMPROVED = "268910001"
IMAGING = "363679005"

# §1.5 treatment termination reasons
NO_RESPONSE = "266721009"
NOT_TOLERATED = "407563006"
PATIENT_REFUSAL = "105480006"
DEATH = "419620001"

# §1.1 / §1.4 / §1.6 / §2 observation codes (LOINC)
DISEASE_STATUS = "97509-4"
ECOG = "89247-1"
KARNOFSKY = "89243-0"
PAIN = "72514-3"
BODY_WEIGHT = "29463-7"
VARIANT = "69548-6"
GENE_STUDIED = "48018-6"
PROTEIN_HGVS = "48005-3"
VARIANT_PRESENT = "LA9633-4"
VARIANT_ABSENT = "LA9634-2"
PDL1_TPS = "83053-9"
MSI = "81695-9"
MSI_HIGH = "LA26203-2"
MSI_STABLE = "LA14122-8"
TMB = "94076-7"
HER2_INTERPRETATION = "48676-1"
POSITIVE = "LA6576-8"

# §1.4 ECOG interpretation answers (LL529-9), index = ECOG grade
ECOG_ANSWERS = ("LA9622-7", "LA9623-5", "LA9624-3", "LA9625-0", "LA9626-8", "LA9627-6")

# §1.3 cancer conditions: SNOMED code -> display, as verified in the specification
CONDITION_DISPLAY: dict[str, str] = {
    "254637007": "Non-small cell lung cancer (disorder)",
    "363358000": "Malignant tumor of lung (disorder)",
    "372244006": "Malignant melanoma (disorder)",
    "363406005": "Malignant neoplasm of colon (disorder)",
    "399068003": "Malignant tumor of prostate (disorder)",
    "254837009": "Malignant neoplasm of breast (disorder)",
    "363478007": "Malignant tumor of thyroid gland (disorder)",
    "363418001": "Malignant tumor of pancreas (disorder)",
    "94381002": "Metastatic malignant neoplasm to liver (disorder)",
    "94222008": "Metastatic malignant neoplasm to bone (disorder)",
    "94225005": "Metastatic malignant neoplasm to brain (disorder)",
    "94391008": "Metastatic malignant neoplasm to lung (disorder)",
}
LIVER_METS, BONE_METS, BRAIN_METS, LUNG_METS = "94381002", "94222008", "94225005", "94391008"

# §2 local codes (cfp-local)
DISTRESS_THERMOMETER = "distress-thermometer"
PALLIATIVE_FOCUS = "palliative-focus"
