"""Search-index rows: what a resource contributes to each index table (see store/schema.py).

Extraction (resource -> rows) is pure; the repository writes the rows in the same transaction as the resource.
All datetimes are naive UTC; a FHIR date/dateTime/period becomes the [low, high) instant range it covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class TokenRow:
    param: str
    system: str | None
    code: str | None


@dataclass(frozen=True)
class StringRow:
    param: str
    value: str  # normalised: lower case, accents removed (FHIR string search is case/accent-insensitive)
    exact: str  # the text as written, for the :exact modifier (case- and accent-sensitive)


@dataclass(frozen=True)
class DateRow:
    param: str
    low: datetime
    high: datetime


@dataclass(frozen=True)
class ReferenceRow:
    param: str
    target_type: str | None  # "Patient" for "Patient/123"; None for absolute/canonical URLs
    target_id: str | None
    url: str | None = None  # absolute URL or canonical (without |version)
    version: str | None = None  # canonical version after "|", or _history version


@dataclass(frozen=True)
class QuantityRow:
    param: str
    value: float
    system: str | None
    code: str | None


@dataclass(frozen=True)
class UriRow:
    param: str
    value: str


@dataclass
class IndexRows:
    tokens: list[TokenRow] = field(default_factory=list)
    strings: list[StringRow] = field(default_factory=list)
    dates: list[DateRow] = field(default_factory=list)
    references: list[ReferenceRow] = field(default_factory=list)
    quantities: list[QuantityRow] = field(default_factory=list)
    uris: list[UriRow] = field(default_factory=list)
