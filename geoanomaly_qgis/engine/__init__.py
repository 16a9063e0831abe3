"""The engine worker: finding the engine's interpreter and running its commands.

Nothing here imports QGIS, torch, numpy or rasterio.
"""

from .discovery import EngineInterpreter, find_engine_python, install_instructions
from .persistent import PersistentEngine
from .worker import EngineCancelled, EngineError, EngineNotFoundError, run_engine

__all__ = [
    "EngineCancelled",
    "EngineError",
    "EngineInterpreter",
    "EngineNotFoundError",
    "PersistentEngine",
    "find_engine_python",
    "install_instructions",
    "run_engine",
]
