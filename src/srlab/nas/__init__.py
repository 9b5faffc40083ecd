"""Architecture search under a MAC budget (``srlab nas``): search spaces and the Optuna-driven search."""

from srlab.nas.space import SearchSpace, get_space, list_spaces, register_space

__all__ = ["SearchSpace", "get_space", "list_spaces", "register_space"]
