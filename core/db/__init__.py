"""PostgreSQL through SQLAlchemy 2 async + asyncpg; the schema is owned by Alembic migrations.

Each table has one writing service (named on the model), so services coordinate through rows
and NOTIFY instead of calling each other.
"""
