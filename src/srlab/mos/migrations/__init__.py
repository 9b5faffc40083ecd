"""Alembic migrations of the MOS app's database, run by :func:`srlab.mos.db.upgrade` (``upgrade head``)."""
