"""Sending one email in two round trips to a server that offers PIPELINING (RFC 2920):
``MAIL``, every ``RCPT`` and ``DATA`` go in one write, then the message in another.

smtplib waits for each command's reply before the next: four round trips or more per email,
each a wait for the server and, in a web process, a hand-off of the GIL to and from the
request threads. What this returns and raises is what ``smtplib.SMTP.sendmail`` returns and
raises for the same replies, so the rest of the delivery code can't tell the two apart.
"""

import re
import smtplib

from .headers import addr_spec


CRLF = b"\r\n"
_LEADING_DOT = re.compile(rb"(?m)^\.")

#: What ``SMTP.sendmail`` returns: the refused recipients, ``{recipient: (code, reply)}``.
Refused = dict[str, tuple[int, bytes]]


def envelope_commands(sender: str, recipients: list[str], options: list[str]) -> bytes:
    """``MAIL FROM``, one ``RCPT TO`` per recipient and ``DATA``, as one write.

    A non-ASCII address raises ``UnicodeEncodeError`` here, before anything is written, as
    smtplib raises it before sending the command.
    """
    mail = f"MAIL FROM:{_path(sender)}"
    if options:
        mail += " " + " ".join(options)
    lines = [mail] + [f"RCPT TO:{_path(rcpt)}" for rcpt in recipients] + ["DATA"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _path(entry: str) -> str:
    """``<name@domain>``: as smtplib's ``quoteaddr``, without parsing a bare address again."""
    return f"<{addr_spec(entry) or entry.strip()}>"


def message_data(data: bytes) -> bytes:
    """The message as it goes after ``354``: leading dots doubled, ended by ``.``."""
    quoted = _LEADING_DOT.sub(b"..", data)
    if not quoted.endswith(CRLF):
        quoted += CRLF
    return quoted + b"." + CRLF


def _give_up(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal: 421 means the server is closing; otherwise the session goes on."""
    if code == 421:
        smtp.close()
    else:
        _reset(smtp)


def _reset(smtp: smtplib.SMTP) -> None:
    try:
        smtp.rset()
    except smtplib.SMTPServerDisconnected:
        pass  # Gone already: what raised next says what happened to the email.


def sendmail(
    smtp: smtplib.SMTP, sender: str, recipients: list[str], data: bytes, options: list[str]
) -> Refused:
    """Like ``smtp.sendmail(sender, recipients, data, options)``, in two round trips."""
    if smtp.has_extn("size"):  # RFC 1870, as smtplib does: a server may refuse it at once.
        options = [f"SIZE={len(data)}", *options]
    smtp.send(envelope_commands(sender, recipients, options))
    # Every reply is read, whatever the first said: the server answers each command sent.
    mail_code, mail_reply = smtp.getreply()
    refused: Refused = {}
    closing = mail_code == 421
    for rcpt in recipients:
        if closing:
            break  # A server saying 421 closes the connection: no more replies will come.
        code, reply = smtp.getreply()
        closing = code == 421
        if code not in (250, 251):
            refused[rcpt] = (code, reply)
    data_code, data_reply = (421, b"") if closing else smtp.getreply()
    if mail_code != 250:
        if data_code == 354:
            _end_empty(smtp)
        _give_up(smtp, mail_code)
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
    if closing:
        smtp.close()
        raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        if data_code == 354:
            _end_empty(smtp)  # RFC 2920: a server may take DATA with no recipient left.
        _reset(smtp)
        raise smtplib.SMTPRecipientsRefused(refused)
    if data_code != 354:
        _give_up(smtp, data_code)
        raise smtplib.SMTPDataError(data_code, data_reply)
    smtp.send(message_data(data))
    code, reply = smtp.getreply()
    if code != 250:
        _give_up(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    return refused


def _end_empty(smtp: smtplib.SMTP) -> None:
    """End a ``DATA`` the server took though nothing may be sent: an empty message, whose
    reply is read and ignored (the ``RSET`` that follows discards it)."""
    smtp.send(b"." + CRLF)
    smtp.getreply()
