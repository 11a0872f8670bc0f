"""idempotency: remember what request a client key answered

A retried `$apply` with the same Idempotency-Key replays the first answer; the same key sent with a different
request must be refused instead, so the key row keeps a fingerprint of the request it answered. The unused
`location` column goes: the answer's body says where the CarePlan is.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_key") as batch_op:
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch_op.drop_column("location")


def downgrade() -> None:
    with op.batch_alter_table("idempotency_key") as batch_op:
        batch_op.add_column(sa.Column("location", sa.String(length=255), nullable=True))
        batch_op.drop_column("request_hash")
