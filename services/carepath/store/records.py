"""What the repository hands back: a stored version of a resource, as served."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carepath import jsonutil


def utc_now() -> datetime:
    """Naive UTC, the form every datetime takes in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def instant(moment: datetime) -> str:
    """A FHIR instant for a naive UTC datetime."""
    return moment.isoformat(timespec="microseconds") + "Z"


def http_date(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


@dataclass(frozen=True)
class StoredResource:
    res_type: str
    res_id: str
    version: int
    last_updated: datetime
    deleted: bool
    content: str | None  # the JSON as served (None for a deletion)

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def relative_url(self) -> str:
        return f"{self.res_type}/{self.res_id}"

    @property
    def versioned_url(self) -> str:
        return f"{self.res_type}/{self.res_id}/_history/{self.version}"

    def json(self) -> dict[str, Any]:
        if self.content is None:
            raise ValueError(f"{self.versioned_url} is a deletion and has no content")
        return jsonutil.loads(self.content)  # type: ignore[no-any-return]


def stamp(resource: dict[str, Any], res_id: str, version: int, moment: datetime) -> dict[str, Any]:
    """The resource as stored: server id and meta.versionId/lastUpdated, the client's other meta kept."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(moment)
    stamped = {"resourceType": resource["resourceType"], "id": res_id, "meta": meta}
    stamped.update((k, v) for k, v in resource.items() if k not in stamped)
    return stamped
