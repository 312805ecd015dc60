"""Time zones: dates are shown in the member's zone, else the node's (``VBG_TIMEZONE``),
and always labelled with their offset (« 14:05 (UTC+2) »)."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime

# Offered first on the account page: where the network's members work.
COMMON = {
    "Africa/Lubumbashi": "Bukavu, Goma, Lubumbashi (UTC+2)",
    "Africa/Kinshasa": "Kinshasa, Mbandaka (UTC+1)",
    "Africa/Kigali": "Kigali (UTC+2)",
    "Africa/Bujumbura": "Bujumbura (UTC+2)",
    "Africa/Brazzaville": "Brazzaville (UTC+1)",
    "Africa/Bangui": "Bangui (UTC+1)",
    "Africa/Douala": "Douala, Yaoundé (UTC+1)",
    "Africa/Ndjamena": "N'Djamena (UTC+1)",
    "Africa/Libreville": "Libreville (UTC+1)",
    "Africa/Casablanca": "Rabat, Casablanca",
    "Africa/Algiers": "Alger (UTC+1)",
    "Africa/Tunis": "Tunis (UTC+1)",
    "Africa/Abidjan": "Abidjan (UTC)",
    "Africa/Dakar": "Dakar (UTC)",
    "Africa/Bamako": "Bamako (UTC)",
    "Africa/Ouagadougou": "Ouagadougou (UTC)",
    "Africa/Niamey": "Niamey (UTC+1)",
    "Africa/Conakry": "Conakry (UTC)",
    "Africa/Lome": "Lomé (UTC)",
    "Africa/Porto-Novo": "Porto-Novo, Cotonou (UTC+1)",
    "Indian/Antananarivo": "Antananarivo (UTC+3)",
    "Europe/Brussels": "Bruxelles",
    "Europe/Paris": "Paris",
    "Europe/Zurich": "Genève",
    "America/Toronto": "Montréal, Toronto",
    "America/Port-au-Prince": "Port-au-Prince",
    "UTC": "UTC",
}


def valid(name: str) -> bool:
    if name in COMMON:
        return True
    try:
        zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=64)
def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def label(moment: datetime) -> str:
    """The offset of an aware datetime: « UTC », « UTC+2 », « UTC−3:30 »."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return "UTC"
    hours, rest = divmod(abs(minutes), 60)
    sign = "+" if minutes > 0 else "−"
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
