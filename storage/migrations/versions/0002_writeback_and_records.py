"""write-back events, import bookkeeping, waitlist and slot offers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 18:50:00

Message bodies encrypted at rest need no schema change: ``storage.crypto.EncryptedText`` stores
its tokens in the existing TEXT columns, and plaintext rows written before a key was configured
stay readable (``rapport records rotate-key`` encrypts them).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('writeback_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('appointment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('writeback_events', schema=None) as batch_op:
        batch_op.create_index('ix_writeback_pending', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_writeback_appointment', ['appointment_id', 'id'], unique=False)

    op.create_table('import_items',
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('appointment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('last_seen_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('source', 'external_id')
    )
    with op.batch_alter_table('import_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_items_appointment_id'), ['appointment_id'], unique=False)

    op.create_table('waitlist',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('appointment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('clinician_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('waitlist', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_waitlist_clinician_status', ['clinician_id', 'status', 'id'], unique=False)

    op.create_table('slot_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('freed_appointment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('clinician_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('start', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tried', sa.JSON(), nullable=False),
    sa.Column('current_entry_id', sa.Integer(), nullable=True),
    sa.Column('current_client_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('taken_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('slot_offers', schema=None) as batch_op:
        batch_op.create_index('ix_slot_offers_open', ['status', 'clinician_id', 'start'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('slot_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_offers_open')
    op.drop_table('slot_offers')
    with op.batch_alter_table('waitlist', schema=None) as batch_op:
        batch_op.drop_index('ix_waitlist_clinician_status')
        batch_op.drop_index(batch_op.f('ix_waitlist_client_id'))
    op.drop_table('waitlist')
    with op.batch_alter_table('import_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_items_appointment_id'))
    op.drop_table('import_items')
    with op.batch_alter_table('writeback_events', schema=None) as batch_op:
        batch_op.drop_index('ix_writeback_appointment')
        batch_op.drop_index('ix_writeback_pending')
    op.drop_table('writeback_events')
