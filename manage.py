"""Shell commands for whoever runs the site: `uv run python manage.py set-role EMAIL ROLE`.

    uv run python manage.py set-role ada@example.com admin    # the first admin

Uses the app's own settings and database (the embedded one when DATABASE_URL is unset,
brought up to date first). Prints what it did; exits 1 for an unknown email or a refused
change (the last admin cannot be demoted), 2 for a malformed command (argparse).
"""

import argparse
import asyncio
import logging
import sys

from sqlalchemy import func, select

import models
from database import EMBEDDED, SessionLocal, engine, upgrade_to_head
from permissions import ROLES
from routers.admin import LastAdmin, set_role


async def set_role_by_email(email: str, role: str) -> tuple[bool, str]:
    """(done, what to tell the person at the shell)."""
    if EMBEDDED:
        await asyncio.to_thread(upgrade_to_head)
    try:
        async with SessionLocal() as db:
            user = await db.scalar(
                select(models.User)
                .where(func.lower(models.User.email) == email.strip().lower())
                .with_for_update()
            )
            if user is None:
                return False, f"No account has the email {email!r}."
            before = user.role
            try:
                await set_role(db, user, role)
            except LastAdmin:
                return False, f"{user.email} is the last admin: make another admin first."
            await db.commit()
            if before == role:
                return True, f"{user.email} ({user.username}) is already {role}."
            return True, f"{user.email} ({user.username}) is now {role} (was {before})."
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manage.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    set_role_command = commands.add_parser("set-role", help="give an account a role")
    set_role_command.add_argument("email")
    set_role_command.add_argument("role", choices=ROLES)
    args = parser.parse_args(argv)
    done, message = asyncio.run(set_role_by_email(args.email, args.role))
    (sys.stdout if done else sys.stderr).write(message + "\n")
    return 0 if done else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    sys.exit(main())
