"""Packaging beyond pyproject.toml: ship the top-level ``suites/`` folder (the source of truth for the
suite files, their class maps and ID lists) as the package ``harness.suites``, so an installed harness
finds ``--suite robustness`` from anywhere."""
from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["harness", "harness.*"]), "harness.suites"],
    package_dir={"harness.suites": "suites"},
    package_data={"harness": ["zoo/*.safetensors", "zoo/*.json", "report/templates/*", "report/templates/site/*",
                             "report/assets/*", "testbeds/timm/*", "testbeds/digits/*"],
                  "harness.suites": ["*.yaml", "maps/*.txt", "ids/*.txt"]},
)
