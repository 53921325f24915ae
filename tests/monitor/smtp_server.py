#!/usr/bin/python3
# tests/monitor/smtp_server.py — a real SMTP server for channels_test.cc (aiosmtpd, Debian's
# python3-aiosmtpd), on 127.0.0.1 and a free port.
#
#   smtp_server.py --dir DIR [--cert CERT --key KEY] --user USER --password PASSWORD
#
# With --cert/--key it offers STARTTLS and requires it (require_starttls: nothing but EHLO,
# STARTTLS and QUIT before TLS), and AUTH only over TLS (auth_require_tls). Without them it
# offers no STARTTLS at all (AUTH then also in clear: the client must refuse to use it).
# AUTH accepts USER/PASSWORD and nothing else.
#
# Each message received is written to DIR/msg-N.eml (the DATA as received), with
# DIR/msg-N.env holding "from <addr>", "to <addr>" per recipient, "tls yes|no" and
# "auth <login>|-"; both appear atomically (written under another name, then renamed). Each
# AUTH attempt (accepted or not) appends one line "ok <login>" or "refused <login>" to
# DIR/auth.log. Prints "PORT <n>" on stdout once the server accepts connections; runs until
# killed.
import argparse
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class PortZeroController(Controller):
    """A Controller listening on the port the kernel picked (port=0)."""

    def _trigger_server(self):
        # Called once the server is bound and before the first connection: learn the port.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Recorder:
    def __init__(self, directory):
        self.dir = directory
        self.n = 0
        self.lock = threading.Lock()

    def _write(self, name, data):
        tmp = os.path.join(self.dir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.dir, name))

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
            n = self.n
        auth = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else "-"
        env = ["from " + envelope.mail_from]
        env += ["to " + r for r in envelope.rcpt_tos]
        env += ["tls " + ("yes" if session.ssl is not None else "no"), "auth " + auth]
        # The .eml first: the test waits for the .env.
        self._write("msg-%d.eml" % n, envelope.original_content or envelope.content)
        self._write("msg-%d.env" % n, ("\n".join(env) + "\n").encode())
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    args = ap.parse_args()

    auth_log = os.path.join(args.dir, "auth.log")

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == args.user.encode()
              and auth_data.password == args.password.encode())
        login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else "?"
        with open(auth_log, "a") as f:
            f.write(("ok " if ok else "refused ") + login + "\n")
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    kwargs = {}
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        kwargs.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
    else:
        kwargs.update(auth_require_tls=False)
    controller = PortZeroController(
        Recorder(args.dir), hostname="127.0.0.1", port=0, server_hostname="haven-test",
        authenticator=authenticator, **kwargs)
    controller.start()
    print("PORT %d" % controller.port, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
