"""change notifications: every statement writing watched resources sends NOTIFY (PostgreSQL)

A statement-level trigger on `resource` (insert and update; a delete is an update of `deleted`) sends
`NOTIFY carepath_changes, '<schema>|<types>'` for the watched types it wrote: delivered when the transaction
commits, in commit order, to every listening process (store/generations.py), with no extra round trip and for
every writer, SQL included. PostgreSQL de-duplicates identical notifications of one transaction. SQLite: nothing.
The watched types are those of `store.generations.WATCHED` when this was written.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION carepath_announce_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    types text;
BEGIN
    SELECT string_agg(DISTINCT res_type, ',' ORDER BY res_type) INTO types FROM written
    WHERE res_type IN ('ActivityDefinition', 'Patient', 'Practitioner', 'Task');
    IF types IS NOT NULL THEN
        PERFORM pg_notify('carepath_changes', current_schema() || '|' || types);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTION)
    for event in ("insert", "update"):
        op.execute(
            f"CREATE TRIGGER resource_announce_{event} AFTER {event.upper()} ON resource "
            "REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION carepath_announce_changes()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS resource_announce_{event} ON resource")
    op.execute("DROP FUNCTION IF EXISTS carepath_announce_changes()")
