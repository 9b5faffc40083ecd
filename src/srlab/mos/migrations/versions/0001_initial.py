"""The first schema: raters, assignments, ratings.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raters",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("consented_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "assignments",
        sa.Column("rater_id", sa.String(32), sa.ForeignKey("raters.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("trial_id", sa.String(32), nullable=False),
        sa.Column("flip", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("rater_id", "trial_id", name="uq_assignment_rater_trial"),
    )
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rater_id", sa.String(32), sa.ForeignKey("raters.id"), nullable=False),
        sa.Column("trial_id", sa.String(32), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("winner", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("rater_id", "trial_id", name="uq_rating_rater_trial"),
    )


def downgrade() -> None:
    op.drop_table("ratings")
    op.drop_table("assignments")
    op.drop_table("raters")
