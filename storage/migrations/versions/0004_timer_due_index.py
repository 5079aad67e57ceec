"""due-timer polling index: (due_at, id) over pending timers only

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 20:00:00

``store.next_due_timer`` asks for ``NOT done AND due_at <= now ORDER BY due_at, id LIMIT 1``. A
partial index on (due_at, id) ``WHERE NOT done`` answers that in index order without a sort and
holds only the pending timers, so it stays small however many done timers pile up
(bench/timers_bench.py measures both). It is added beside the old (done, due_at) index (expand);
dropping that one is left to a later release (contract), so old and new processes can run side by
side during a rolling deploy. On PostgreSQL it is built CONCURRENTLY: writers are not blocked.
"""

from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NAME = "ix_timers_due_pending"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                NAME,
                "timers",
                ["due_at", "id"],
                unique=False,
                postgresql_where=text("NOT done"),
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index(NAME, "timers", ["due_at", "id"], unique=False, sqlite_where=text("done = 0"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(NAME, table_name="timers", postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index(NAME, table_name="timers")
