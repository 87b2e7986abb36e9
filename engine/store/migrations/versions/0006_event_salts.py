"""case_event.salts: free text enters the chain by its own salted digest (SPEC §15)

From this revision on, an event's comment, the values of its `text` fields, an instruction's
text and a suspension's or extension's reason are hashed by a salted digest (kept in the
event's `digests`, which the hash covers) and their salts in this new column, outside the
hash, so that `case redact --comments` / `--field F` can erase text and salt with the chain
still verifying. Events written before keep their format: their texts stay hashed in clear
and the column stays empty for them, so not a single existing hash changes.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("case_event", sa.Column(
        "salts", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True))


def downgrade() -> None:
    # Dropping the salts of texts written since would lose data: those texts could no longer be
    # told from forged ones (verify reports them altered) nor be erased. Refuse rather.
    held = op.get_bind().execute(sa.text("SELECT count(*) FROM case_event WHERE salts IS NOT NULL")).scalar()
    if held:
        raise RuntimeError(f"{held} event(s) hold free text by a salt of their own (revision 0006):"
                           " downgrading would lose those salts")
    # Plain DROP COLUMN, as 0002 does: batch mode trips over the events' foreign keys.
    op.drop_column("case_event", "salts")
