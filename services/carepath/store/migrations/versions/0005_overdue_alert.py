"""workflow: the overdue-alert keys

`overdue_alert` holds one row per Task and due date whose overdue alert was raised, written in the transaction
of the alert (the priority step, the notification and the event), so the alert is raised once whichever
scheduler runs the scan, and again only if the due date changes.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "overdue_alert",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("due", sa.String(length=64), nullable=False),
        sa.Column("alerted", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "due"),
    )


def downgrade() -> None:
    op.drop_table("overdue_alert")
