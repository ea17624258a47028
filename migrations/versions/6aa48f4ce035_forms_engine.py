"""forms engine: form definitions, sections, fields, lookups and locations

Plain SQLAlchemy types only (no application imports). The downgrade drops the
tables in dependency order; records keep their field values in their own JSON,
so nothing outside these tables depends on them.

Revision ID: 6aa48f4ce035
Revises: e70d1a0d584e
Create Date: 2026-11-28 19:20:12.175278

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '6aa48f4ce035'
down_revision = 'e70d1a0d584e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('form_definitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('record_type', sa.String(length=32), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('is_draft_allowed', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_definitions')),
    sa.UniqueConstraint('record_type', name=op.f('uq_form_definitions_record_type'))
    )
    op.create_table('locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('names', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('is_disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['locations.id'], name=op.f('fk_locations_parent_id_locations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_locations')),
    sa.UniqueConstraint('code', name=op.f('uq_locations_code'))
    )
    with op.batch_alter_table('locations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_locations_parent_id'), ['parent_id'], unique=False)

    op.create_table('lookups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lookups')),
    sa.UniqueConstraint('code', name=op.f('uq_lookups_code'))
    )
    op.create_table('form_sections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('help_texts', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('is_hidden', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['form_id'], ['form_definitions.id'], name=op.f('fk_form_sections_form_id_form_definitions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_sections')),
    sa.UniqueConstraint('form_id', 'key', name=op.f('uq_form_sections_form_id'))
    )
    with op.batch_alter_table('form_sections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_sections_form_id'), ['form_id'], unique=False)

    op.create_table('lookup_values',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lookup_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('is_disabled', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['lookup_id'], ['lookups.id'], name=op.f('fk_lookup_values_lookup_id_lookups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lookup_values')),
    sa.UniqueConstraint('lookup_id', 'code', name=op.f('uq_lookup_values_lookup_id'))
    )
    with op.batch_alter_table('lookup_values', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lookup_values_lookup_id'), ['lookup_id'], unique=False)

    op.create_table('form_fields',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('section_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('help_texts', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('is_required', sa.Boolean(), nullable=False),
    sa.Column('is_hidden', sa.Boolean(), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('matching_tag', sa.String(length=32), nullable=True),
    sa.Column('condition', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('lookup_id', sa.Integer(), nullable=True),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('min_value', sa.String(length=32), nullable=True),
    sa.Column('max_value', sa.String(length=32), nullable=True),
    sa.Column('max_length', sa.Integer(), nullable=True),
    sa.Column('is_future_refused', sa.Boolean(), nullable=False),
    sa.Column('is_approximate_allowed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['form_id'], ['form_definitions.id'], name=op.f('fk_form_fields_form_id_form_definitions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lookup_id'], ['lookups.id'], name=op.f('fk_form_fields_lookup_id_lookups')),
    sa.ForeignKeyConstraint(['parent_id'], ['form_fields.id'], name=op.f('fk_form_fields_parent_id_form_fields'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['section_id'], ['form_sections.id'], name=op.f('fk_form_fields_section_id_form_sections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_fields')),
    sa.UniqueConstraint('form_id', 'key', name=op.f('uq_form_fields_form_id'))
    )
    with op.batch_alter_table('form_fields', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_fields_form_id'), ['form_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_form_fields_lookup_id'), ['lookup_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_form_fields_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_form_fields_section_id'), ['section_id'], unique=False)



def downgrade():
    with op.batch_alter_table('form_fields', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_fields_section_id'))
        batch_op.drop_index(batch_op.f('ix_form_fields_parent_id'))
        batch_op.drop_index(batch_op.f('ix_form_fields_lookup_id'))
        batch_op.drop_index(batch_op.f('ix_form_fields_form_id'))

    op.drop_table('form_fields')
    with op.batch_alter_table('lookup_values', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lookup_values_lookup_id'))

    op.drop_table('lookup_values')
    with op.batch_alter_table('form_sections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_sections_form_id'))

    op.drop_table('form_sections')
    op.drop_table('lookups')
    with op.batch_alter_table('locations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_locations_parent_id'))

    op.drop_table('locations')
    op.drop_table('form_definitions')
