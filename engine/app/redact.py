"""Erasing a resident's personal data when its retention ends (AVG), without breaking the chain.

The chain commits to salted digests of personal values, never to the values, so removing
the values from the case and from every event — and the salt, which would let a guessed value
be confirmed — leaves every hash as it was. "Erased" must also hold for the database files;
the redaction records that they still hold the old values (`engine.store.redact.mark_pending`),
and `engine.app.maintenance` removes them from the files as soon as that can be done without
stalling anyone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.core.casework import Case, Change, Draft
from engine.core.fields import check_free_text
from engine.core.vocabulary import Action
from engine.errors import InvalidValue, Refused, RoleRequired
from engine.store import redact as store

if TYPE_CHECKING:
    from engine.app.service import Loket


def redact(loket: Loket, ref: str, reason: str, *, actor: str | None) -> tuple[Case, list[str]]:
    if not reason or not reason.strip():
        raise InvalidValue("give a reason: --reason TEXT")
    check_free_text(reason, "--reason", multiline=False)
    org = loket.organisation()
    actor = loket.require_person(actor)
    now = loket.clock.now()
    with loket.engine.begin() as conn:
        case = loket.get_case(ref, conn)
        rt = loket.type_of(case)
        events = store.event_data(conn, case.id)
        unit = loket.holding_unit(case, conn)
        if org.rank(actor, unit) < 3:
            raise RoleRequired(f"{actor} may not redact {case.ref}: it needs role head in unit '{unit}'")
        personal = rt.personal_fields()
        if not personal:
            raise Refused(f"{rt.key} has no personal fields: nothing to redact")
        present = set(personal & case.data.keys())
        for event in events:
            present |= personal & (event["data"] or {}).keys()
        if not present:
            # Redacted before, or never given: personal data entered after a redaction can be
            # erased by redacting again.
            done = f" (redacted on {case.redacted_at.date().isoformat()})" if case.redacted_at else ""
            raise Refused(f"{case.ref} holds no personal data{done}: nothing to redact")
        fields = sorted(present)
        for event in events:
            data = event["data"] or {}
            if personal & data.keys():
                kept = {k: v for k, v in data.items() if k not in personal}
                store.set_event_data(conn, event["id"], kept)
        kept_data = {k: v for k, v in case.data.items() if k not in personal}
        change = Change({"data": kept_data, "salt": None, "redacted_at": now},
                        [Draft(Action.REDACTED, data={"fields": fields, "reason": reason.strip()})])
        new = loket.write_case(conn, rt, case, change, actor, now)
        store.mark_pending(conn)
    return new, fields
