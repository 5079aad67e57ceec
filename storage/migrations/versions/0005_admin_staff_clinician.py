"""admin pages: a staff user's clinician (what a clinician-role user is scoped to)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 21:40:00

Nullable and without a default: existing users keep working (admins see everything; a clinician
without a clinician id sees only open crisis alerts until an admin maps them).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("clinician", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("clinician")
