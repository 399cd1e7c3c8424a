"""order lines: units the channel reports as fulfilled

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing lines start at 0 (nothing known as fulfilled outside Rappit): the next version
    # of each order from the channel fills it in.
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "channel_fulfilled_quantity", sa.Integer(), server_default="0", nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_column("channel_fulfilled_quantity")
