"""How tests/data/loket-0005.sql was made: run with the code as of schema revision 0005 (before
free text entered the chain by digest) in an empty folder, then dumped with sqlite3's iterdump."""

import datetime as dt

from engine.app.bundled import sample_paths
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.store.db import migrate, open_engine

START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
engine = open_engine("sqlite:///loket.db", create=True)
migrate(engine)
clock = FixedClock(START)
loket = Loket(engine, clock)
org, types = sample_paths()
loket.load_organisation(org)
loket.load_request_types(types)
ref = loket.new_case("bewonersinitiatief", [
    "title=Straatfeest Lindelaan", "description=Buurman Kees Oudevrijs klaagt al jaren",
    "name=Geertruida Zwanenburg", "email=g.zwanenburg@example.org"], actor="c.devries").ref
clock.set(START + dt.timedelta(hours=1))
loket.comment(ref, "Melder Els de Wit belde, tel 06-12345678", actor="c.devries")
clock.set(START + dt.timedelta(hours=2))
loket.suspend(ref, "Wachten op brief van Jan Klaassen", actor="c.devries")
print(ref)
engine.dispose()
