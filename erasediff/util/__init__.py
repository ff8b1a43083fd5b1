"""Plumbing every part uses: errors, hashes, atomic folders, configs, caches, the work folder, offline settings."""
