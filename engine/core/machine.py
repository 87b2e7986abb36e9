"""The state machines behind request types, built once per loaded version.

Following the traps in LIBRARIES.md: one `transitions.Machine` per request-type version, and
a case is on it only for the duration of one trigger, through a small adapter (a database row
cannot be a transitions model). `add_model` costs more than the trigger itself (it binds every
trigger and state helper onto the model), so each machine keeps one adapter per thread,
attached once; a trigger puts the case's state on it, fires, and reads the new state off.

`transitions` is imported when the first machine is built: a command that only reads cases
(`case show`, `case list`) never fires a trigger and does not load it (bench/bench_cli.py).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from engine.core.definition import RequestType
from engine.errors import TransitionNotAllowed

if TYPE_CHECKING:
    from transitions import Machine

_machines: dict[tuple[str, str], Machine] = {}
_lock = threading.Lock()
_local = threading.local()


class CaseAdapter:
    """The one attribute transitions needs, `state`, and nothing else of the case."""

    def __init__(self, state: str) -> None:
        self.state = state


def build_machine(rt: RequestType) -> Machine:
    from transitions import Machine

    states = list(rt.states)
    transitions: list[dict[str, Any]] = [
        {"trigger": t.trigger, "source": list(t.sources), "dest": t.dest} for t in rt.transitions
    ]
    return Machine(
        model=None, states=states, transitions=transitions, initial=rt.initial,
        auto_transitions=False, send_event=True,
    )


def machine_for(rt: RequestType) -> Machine:
    """The cached machine of this exact definition (the digest pins the version's content)."""
    key = (rt.key, rt.digest)
    machine = _machines.get(key)
    if machine is None:
        with _lock:
            machine = _machines.get(key)
            if machine is None:
                machine = _machines[key] = build_machine(rt)
    return machine


def _adapter(rt: RequestType) -> tuple[Machine, CaseAdapter]:
    key = (rt.key, rt.digest)
    adapters: dict[tuple[str, str], tuple[Machine, CaseAdapter]] | None = getattr(_local, "adapters", None)
    if adapters is None:
        adapters = _local.adapters = {}
    found = adapters.get(key)
    if found is None:
        machine = machine_for(rt)
        adapter = CaseAdapter(rt.initial)
        machine.add_model(adapter, initial=rt.initial)
        found = adapters[key] = (machine, adapter)
    return found


def fire(rt: RequestType, state: str, trigger: str) -> str:
    """Run `trigger` from `state` through the machine and return the new state."""
    from transitions import MachineError

    _machine, adapter = _adapter(rt)
    adapter.state = state
    try:
        if not getattr(adapter, trigger)():
            raise TransitionNotAllowed(f"'{trigger}' did not complete from state '{state}'")
    except (MachineError, AttributeError):
        raise TransitionNotAllowed(f"'{trigger}' is not possible from state '{state}'") from None
    return adapter.state
