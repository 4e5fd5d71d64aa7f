"""What the tools print of an exception in their one-line error messages."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when the message is empty (``EOFError()``)."""
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__
