"""The registry of ``vbg-node admin …`` commands. Each package registers its own with
:func:`admin_command` (``node.cli``, ``node.demo``, ``federation.cli``); ``node.cli``,
the composition root, imports them all and builds the parser. The command names and
options are a public interface (scripts call them)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

AdminCommand = Callable[[Any, argparse.Namespace], Awaitable[None]]
# name -> (handler, configure parser, help)
ADMIN_COMMANDS: dict[str, tuple[AdminCommand, Callable[[argparse.ArgumentParser], None], str]] = {}


def admin_command(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]
) -> Callable[[AdminCommand], AdminCommand]:
    """Register ``vbg-node admin NAME``: ``configure`` adds its arguments to the parser."""

    def register(handler: AdminCommand) -> AdminCommand:
        ADMIN_COMMANDS[name] = (handler, configure, help)
        return handler

    return register


RawCommand = Callable[[Any, str, argparse.Namespace], Coroutine[Any, Any, None]]
# Admin commands that see the database as it is (no migration first): they get the
# settings and the DSN, not a connection (check, backup, restore).
RAW_ADMIN_COMMANDS: dict[str, tuple[RawCommand, Callable[[argparse.ArgumentParser], None], str]] = {}


def raw_admin_command(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]
) -> Callable[[RawCommand], RawCommand]:
    """Register ``vbg-node admin NAME`` run on the unmigrated database."""

    def register(handler: RawCommand) -> RawCommand:
        RAW_ADMIN_COMMANDS[name] = (handler, configure, help)
        return handler

    return register
