"""The base of the errors that services raise when a rule of the domain refuses a write."""


class DomainError(Exception):
    """A write refused by a rule of the domain; ``field`` names the input at fault, if one is.

    Views, forms, admin actions and commands catch it and show ``message`` next to ``field``;
    it never carries a secret.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
