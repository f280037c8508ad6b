"""BFCL-v3's eight executable backends, and how an entry gets fresh instances of them.

Multi-turn entries are scored by running the model's calls and the ground truth's calls against
simulated services (a file system, a trading bot, a travel agency, ...) and comparing the states
and results they end in. The checker compares state and result strings exactly, so the services
must be BFCL's own: the modules beside this file are the official code, copied from the
`bfcl-eval==2025.8.6.2` wheel (Apache-2.0, see SOURCE_AND_LICENSE.md here) with only their import
of `long_context` made relative. They are copied rather than installed because that wheel declares
a dozen provider SDKs as dependencies which the backends never use.

This file adds what BFCL's executor does around the classes: which module holds which class, how
an instance is loaded from an entry's `initial_config`, and a reset of the long-context fixtures.
Those fixtures are module-level lists and dicts that some backends hand out or even mutate (the
vehicle's long weather report, the travel agency's extra credit cards), so without a reset a
scored entry could change the next one.
"""

from __future__ import annotations

import copy
import importlib
import pickle
from typing import Any

from looptool.eval.bfcl_backends import long_context as fixtures

# Class name (as in an entry's `involved_classes`) -> module beside this file.
CLASS_MODULES: dict[str, str] = {
    "GorillaFileSystem": "gorilla_file_system",
    "MathAPI": "math_api",
    "MessageAPI": "message_api",
    "TwitterAPI": "posting_api",
    "TicketAPI": "ticket_api",
    "TradingBot": "trading_bot",
    "TravelAPI": "travel_booking",
    "VehicleControlAPI": "vehicle_control",
}
# Classes without a scenario to load (BFCL's STATELESS_CLASSES).
STATELESS_CLASSES = frozenset({"MathAPI"})

# Every mutable long-context fixture as first imported, pickled (restoring from bytes is several
# times faster than a deep copy). Restored in place: the backends imported the objects themselves
# (`from .long_context import X`), so rebinding the module's names would not reach them.
_PRISTINE_FIXTURES = {name: pickle.dumps(value) for name, value in vars(fixtures).items()
                      if not name.startswith("_") and isinstance(value, (list, dict))}


def backend_class(name: str) -> type:
    """The backend class called `name` in BFCL's data; ValueError for any other name."""
    if name not in CLASS_MODULES:
        raise ValueError(f"unknown BFCL backend class {name!r}; known: {', '.join(CLASS_MODULES)}")
    module = importlib.import_module(f"{__name__}.{CLASS_MODULES[name]}")
    return getattr(module, name)


def new_instance(name: str, initial_config: dict[str, Any], long_context: bool) -> Any:
    """A fresh instance of backend `name`, loaded as BFCL loads it: from a deep copy of the entry's
    `initial_config[name]` (an empty scenario when absent), with the long-context flag."""
    instance = backend_class(name)()
    if name not in STATELESS_CLASSES:
        instance._load_scenario(copy.deepcopy(initial_config.get(name, {})), long_context=long_context)
    return instance


def reset_shared_fixtures() -> None:
    """Put the long-context fixtures back as they were imported.

    Only instances loaded with `long_context=True` read the fixtures, so this is needed before
    loading a long-context entry, not before every entry.
    """
    for name, pristine in _PRISTINE_FIXTURES.items():
        current = getattr(fixtures, name)
        if isinstance(current, list):
            current[:] = pickle.loads(pristine)
        else:
            current.clear()
            current.update(pickle.loads(pristine))
