"""What a server does once on start: the default workspace, its owner key, the optional demo bot."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from chatwell.domain.bots import BotCreate
from chatwell.domain.sources import TextSourceIn
from chatwell.services import accounts, bots, server_keys, sources, workspaces
from chatwell.services.principals import owner_principal
from chatwell.settings import Settings
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot

DEMO_SLUG = "demo"
DEMO_TEXT = """# chatwell

chatwell is a self-hostable platform for AI chatbots trained on your own content.
Create a bot, add documents, web pages and Q&A pairs, and serve it through a streaming chat API,
an embeddable website widget and a dashboard.

## Opening hours

Our support team answers Monday to Friday, 9:00 to 17:00 CET. Weekend questions are answered
on Monday morning.

## Pricing

chatwell is free and open source. You run it on your own machine; there is no per-message fee.
"""


async def on_start(db: Database, settings: Settings, *, announce: Callable[[str], None]) -> None:
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    workspace, generated = await workspaces.ensure_default_workspace(db, admin_secret=admin)
    if generated:
        announce(
            "\n  A new owner key for the default workspace was created. It is shown only now:\n\n"
            f"    {generated}\n\n  Store it (e.g. export CHATWELL_KEY=...); it cannot be shown again.\n"
        )
    if await accounts.needs_setup(db):
        token = server_keys.setup_token(await server_keys.server_key(db))
        announce(
            f"\n  No dashboard account yet. Create the owner at /dashboard/setup with this set-up token\n"
            f"  (or the admin key): {token}\n  (`chatwell setup-token` prints it again.)\n"
        )
    if settings.demo:
        await ensure_demo_bot(db, workspace_id=workspace.id, announce=announce)


async def ensure_demo_bot(db: Database, *, workspace_id, announce: Callable[[str], None]) -> None:  # type: ignore[no-untyped-def]
    async with db.read() as session:
        exists = await session.scalar(select(Bot.id).where(Bot.slug == DEMO_SLUG))
    if exists is not None:
        return
    principal = owner_principal(workspace_id)
    bot = await bots.create_bot(
        db,
        workspace_id=workspace_id,
        data=BotCreate(
            name="Demo bot",
            slug=DEMO_SLUG,
            public=True,
            welcome_message="Hi! Ask me about chatwell.",
            suggested_questions=["What is chatwell?", "When is support available?"],
        ),
    )
    await sources.add_text_source(
        db,
        principal=principal,
        bot_ref=str(bot.id),
        data=TextSourceIn(type="text", title="About chatwell", text=DEMO_TEXT),
    )
    announce(f"  Demo bot ready: id {bot.id}, slug {bot.slug!r}.")
