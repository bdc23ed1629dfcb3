"""Paths of the fixtures shipped with the tests (tests/fixtures/README.md: their provenance)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REAL_RECORD = FIXTURES / "mimic2_3975656_0013.mat"
ORIGINAL_STATE_DICT_SHAPES = FIXTURES / "original_state_dict_shapes.json"
