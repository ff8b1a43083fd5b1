"""Curation: forget/retain sets written as files with a content-hash manifest, and the Great Expectations suites over
it."""
