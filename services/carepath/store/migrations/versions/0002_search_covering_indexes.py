"""search: covering indexes for index-only probes

The worklist search (owner + status, sorted by due-date) probes sp_token and sp_date once per candidate by rid;
with (rid, param, ...) indexes and target_type in the reference index those probes and the driving scan are
answered from the indexes alone (measured on PostgreSQL with 100k Tasks).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, old index, old columns, new index, new columns)
_CHANGES = [
    ("sp_token", "ix_sp_token_rid", ["rid"], "ix_sp_token_rid_param_code", ["rid", "param", "code"]),
    ("sp_date", "ix_sp_date_rid", ["rid"], "ix_sp_date_rid_param_low_high", ["rid", "param", "low", "high"]),
    ("sp_reference", "ix_sp_reference_res_type_param_target_id_rid", ["res_type", "param", "target_id", "rid"],
     "ix_sp_reference_res_type_param_target_id_target_type_rid",
     ["res_type", "param", "target_id", "target_type", "rid"]),
]  # fmt: skip


def upgrade() -> None:
    for table, old, _, new, columns in _CHANGES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(new, columns, unique=False)
            batch_op.drop_index(old)


def downgrade() -> None:
    for table, old, old_columns, new, _ in _CHANGES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(old, old_columns, unique=False)
            batch_op.drop_index(new)
