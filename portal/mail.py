"""Email helpers shared by the apps."""


def subject_line(text: str) -> str:
    """``text`` as one line, fit for an email's Subject: Django refuses a header holding a line
    break (``BadHeaderError``), and an organisation's name may hold one."""
    return " ".join(text.split())
