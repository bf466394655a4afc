"""`python run_gateway.py phone 0712345678`: a feature phone in the terminal, for demos and manual tests.

It speaks to a running gateway exactly as Africa's Talking does (USSD hops, inbound SMS) and reads the
phone's SMS inbox from the built-in Africa's Talking simulator (local profile); ``inbox --email [address]``
reads the built-in SMTP sink's mails instead (receipts, settlement summaries). With AT_CALLBACK_TOKEN set
it posts to /at/<token>/ussd and /at/<token>/sms/inbound, as AT is configured to.
"""
from __future__ import annotations

import secrets

import requests

from shared.phone import normalize_phone, to_international

from ..http.callerguard import at_path

HELP = ("Commands: dial [code] (USSD, default *384*123#), sms <text> (send an SMS to the short code), "
        "inbox (read your SMS), inbox --email [address] (read the e-mails sent), help, quit")


class FeaturePhone:
    """One phone: dials USSD sessions and sends SMS over HTTP, reads the simulated SMS inbox."""

    def __init__(self, phone: str, *, gateway_url: str, at_sim_url: str | None, ask=input, say=print,
                 timeout: float = 10.0, at_token: str = "", mail_url: str | None = None):
        self.phone = normalize_phone(phone)
        self.gateway_url = gateway_url.rstrip("/")
        self.at_token = at_token
        self.at_sim_url = at_sim_url
        self.ask, self.say, self.timeout = ask, say, timeout
        self.seen = 0
        self.mail_url = mail_url
        self.mail_seen = 0

    def dial(self, service_code: str = "*384*123#") -> None:
        """One USSD session: show each screen, send each answer, until END."""
        session_id = f"PHONE_{secrets.token_hex(6)}"
        inputs: list[str] = []
        while True:
            screen = self._ussd(session_id, service_code, "*".join(inputs))
            self.say(screen[4:] if screen[:4] in ("CON ", "END ") else screen)
            if not screen.startswith("CON "):
                return
            inputs.append(self.ask("> ").strip())

    def _ussd(self, session_id: str, service_code: str, text: str) -> str:
        response = requests.post(self._url("/ussd"), timeout=self.timeout, data={
            "sessionId": session_id, "serviceCode": service_code, "networkCode": "63902",
            "phoneNumber": to_international(self.phone), "text": text})
        return response.text

    def _url(self, path: str) -> str:
        return self.gateway_url + at_path(self.at_token, path)

    def sms(self, text: str) -> None:
        """Send an SMS to the short code; the reply arrives in the inbox."""
        response = requests.post(self._url("/sms/inbound"), timeout=self.timeout, data={
            "from": to_international(self.phone), "to": "22384", "text": text, "networkCode": "63902",
            "id": f"ATXid_phone_{secrets.token_hex(8)}", "date": ""})
        self.say("Sent." if response.status_code == 200 else f"Not sent: {response.text}")

    def inbox(self) -> None:
        """Show the SMS this phone received since the last look."""
        if not self.at_sim_url:
            self.say("No SMS inbox: the gateway is not using the built-in Africa's Talking simulator.")
            return
        messages = requests.get(f"{self.at_sim_url}/simulator/messages", timeout=self.timeout,
                                params={"phone": self.phone, "since": self.seen}).json()
        for message in messages:
            self.say(f"[{message['time']}] {message['message']}")
            self.seen = max(self.seen, message["seq"])
        if not messages:
            self.say("No new SMS.")

    def mail_inbox(self, address: str = "") -> None:
        """Show the e-mails the SMTP sink received since the last look (to ``address`` only, if given)."""
        if not self.mail_url:
            self.say("No mailbox: the gateway is not sending e-mail to the built-in SMTP sink.")
            return
        params = {"since": self.mail_seen, **({"to": address} if address else {})}
        mails = requests.get(f"{self.mail_url}/simulator/messages", timeout=self.timeout, params=params).json()
        for mail in mails:
            files = ", ".join(f"{a['filename']} ({a['size']} bytes)" for a in mail["attachments"])
            self.say(f"[{mail['time']}] To {', '.join(mail['to'])}: {mail['subject']}"
                     + (f"\n  attached: {files}" if files else "") + f"\n{mail['text'].rstrip()}")
            self.mail_seen = max(self.mail_seen, mail["seq"])
        if not mails:
            self.say("No new e-mail.")

    def run(self) -> int:
        """The interactive loop; returns the exit code."""
        self.say(f"Phone {to_international(self.phone)} on {self.gateway_url}. {HELP}")
        while True:
            try:
                line = self.ask("phone> ").strip()
            except EOFError:
                return 0
            word, _, rest = line.partition(" ")
            try:
                if not self._command(word.lower(), rest.strip()):
                    return 0
            except requests.RequestException as exc:
                self.say(f"The gateway did not answer: {type(exc).__name__}")

    def _command(self, word: str, rest: str) -> bool:
        if word in ("quit", "exit"):
            return False
        if word == "dial":
            self.dial(rest or "*384*123#")
        elif word == "sms" and rest:
            self.sms(rest)
        elif word == "inbox" and rest.split()[:1] == ["--email"]:
            self.mail_inbox(rest.split()[1] if len(rest.split()) > 1 else "")
        elif word == "inbox":
            self.inbox()
        else:
            self.say(HELP)
        return True
