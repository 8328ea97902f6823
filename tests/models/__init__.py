"""Tests of workflow_lib/models/ (a package, so that e.g. models/test_babel.py and test_babel.py
can share a basename)."""
