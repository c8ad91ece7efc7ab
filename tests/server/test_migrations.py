"""Migrations: a fresh database upgrades to head, the models match it (no drift), and it goes back down."""

from alembic import command

from core.migrate import alembic_config, current_revision, upgrade


def test_upgrade_head_then_check_has_no_drift(db_url: str) -> None:
    config = alembic_config(db_url)
    command.downgrade(config, "base")
    assert current_revision(db_url) is None
    upgrade(db_url)
    command.check(config)  # raises if autogenerate would emit any operation
    head = current_revision(db_url)
    assert head is not None
    upgrade(db_url)  # idempotent
    assert current_revision(db_url) == head
