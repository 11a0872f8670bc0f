"""events: the transactional outbox and the processed-event keys

`outbox` holds the events written in the same transaction as the change that caused them until the relay has
published them; `processed_event` holds the unique key (CloudEvents source + id) of every handled inbound event,
written in the transaction of its effects, so a redelivered event is recognised and has no second effect.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("careplan", sa.String(length=128), nullable=True),
        sa.Column("pathway", sa.String(length=512), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,  # ids are never reused (they are CloudEvents ids)
    )
    op.create_table(
        "processed_event",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("processed", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("processed_event", schema=None) as batch_op:
        batch_op.create_index("ix_processed_event_processed", ["processed"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_event", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_event_processed")
    op.drop_table("processed_event")
    op.drop_table("outbox")
