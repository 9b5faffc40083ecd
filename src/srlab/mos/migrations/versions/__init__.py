"""The migrations, oldest first (Alembic reads this folder by path; this file makes it package data)."""
