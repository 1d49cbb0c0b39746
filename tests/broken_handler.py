"""A handler module that fails to import, as a user's typo would."""

raise RuntimeError("this module is broken on purpose")
