"""The auditor pages and the audit log's filters: audit's adapters that name assets, so they read registry's
models and selectors (the one exception to the layers, declared in pyproject.toml)."""
