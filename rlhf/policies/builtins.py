"""The built-in alignment methods, registered in this order (each module registers its own, as a
user's method module would): ``rlhf``, ``dpo``, ``ipo``, ``cdpo``, ``slic``, ``cpl``, then the methods
of rankings and ties: ``pl-dpo`` (:mod:`.pl_dpo`), ``rk-dpo`` and ``davidson-dpo`` (:mod:`.tie_dpo`)."""

from . import rlhf_method  # noqa: F401  (isort: skip: the order is the registry's)
from . import dpo  # noqa: F401  # isort: skip
from . import ipo  # noqa: F401  # isort: skip
from . import cdpo  # noqa: F401  # isort: skip
from . import slic  # noqa: F401  # isort: skip
from . import cpl  # noqa: F401  # isort: skip
from . import pl_dpo  # noqa: F401  # isort: skip
from . import tie_dpo  # noqa: F401  # isort: skip
