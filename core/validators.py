"""Validators shared by the apps."""

from django.core.validators import RegexValidator

# The names of assets, stages and service accounts: they appear in URLs and in audit records unquoted.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
name_validator = RegexValidator(
    NAME_PATTERN,
    "must be 1-100 characters of lowercase letters, digits, '-', '_' or '.', starting with a letter or digit",
)
