"""delivery: the change feed, Subscription delivery state, notifications and the hospital push queue

`delivery_change` gets a row in the transaction of every CarePlan and Task version (so nothing committed is
missed); the delivery fan-out turns each into `subscription_notification` rows (numbered per Subscription) and
`ehr_push` rows, then deletes it. `subscription_state` keeps what the worker needs of each Subscription,
including the header values, which are never stored in the resource itself.

Revision ID: 0006
Revises: 0004 (re-chained after 0005 when the branches are merged)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "delivery_change",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("batch", sa.String(length=36), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "subscription_state",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.String(length=1024), nullable=False),
        sa.Column("payload", sa.String(length=64), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("end", sa.DateTime(), nullable=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("subscription_state", schema=None) as batch_op:
        batch_op.create_index("ix_subscription_state_status", ["status"], unique=False)
    op.create_table(
        "subscription_notification",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("event_number", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.String(length=36), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("sent", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "event_number", name="uq_subscription_notification_number"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("subscription_notification", schema=None) as batch_op:
        batch_op.create_index("ix_subscription_notification_status_due", ["status", "due"], unique=False)
    op.create_table(
        "ehr_push",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("batch", sa.String(length=36), nullable=False),
        sa.Column("refs", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("due", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("ehr_push", schema=None) as batch_op:
        batch_op.create_index("ix_ehr_push_status_due", ["status", "due"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ehr_push", schema=None) as batch_op:
        batch_op.drop_index("ix_ehr_push_status_due")
    op.drop_table("ehr_push")
    with op.batch_alter_table("subscription_notification", schema=None) as batch_op:
        batch_op.drop_index("ix_subscription_notification_status_due")
    op.drop_table("subscription_notification")
    with op.batch_alter_table("subscription_state", schema=None) as batch_op:
        batch_op.drop_index("ix_subscription_state_status")
    op.drop_table("subscription_state")
    op.drop_table("delivery_change")
