"""Small helpers shared by the tests."""
from __future__ import annotations

import re
import socket
import time
import zlib


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll until predicate() is truthy (for work that happens in another thread or process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pdf_text(data: bytes) -> str:
    """The text of a PDF as Qt writes it (fonts as glyph codes in hex strings, each font with a ToUnicode
    CMap; content streams Flate-compressed or not): the codes mapped back to characters, a line per text
    block. Enough to check what a receipt says without a PDF library."""
    objects = {int(n): body for n, body in re.findall(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}
    fonts = {}
    for resources in re.findall(rb"/Font\s*<<(.*?)>>", data, re.S):
        for name, number in re.findall(rb"/([\w.+-]+)\s+(\d+) 0 R", resources):
            cmap = re.search(rb"/ToUnicode (\d+) 0 R", objects.get(int(number), b""))
            if cmap:
                fonts[name] = _to_unicode(_stream(objects[int(cmap.group(1))]))
    lines, font = [], {}
    for number in re.findall(rb"/Contents (\d+) 0 R", data):
        for block in re.findall(rb"\bBT\b(.*?)\bET\b", _stream(objects[int(number)]), re.S):
            text = ""
            for name, glyphs in re.findall(rb"/([\w.+-]+)\s+[\d.]+\s+Tf|<([0-9A-Fa-f]*)>\s*Tj", block):
                if name:
                    font = fonts.get(name, {})
                for n in range(0, len(glyphs), 4):
                    text += font.get(int(glyphs[n:n + 4], 16), "?")
            lines.append(text.replace("\t", " "))
    return "\n".join(lines)


def _stream(body: bytes) -> bytes:
    """A stream's bytes. Compressed data may itself end in a CR byte, which a pattern for the line end before
    "endstream" would strip (a truncated stream, now and then): the deflate stream's own end is used instead,
    and whatever follows it (the EOL) is left over."""
    if b"/FlateDecode" in body:
        raw = re.search(rb"stream\r?\n(.*)endstream", body, re.S).group(1)
        return zlib.decompressobj().decompress(raw)
    return re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S).group(1)


def _to_unicode(cmap: bytes) -> dict[int, str]:
    """Code -> text from a ToUnicode CMap's bfchar and bfrange entries (single and array forms)."""
    out = {}
    for code, text in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*$", _section(cmap, b"bfchar"), re.M):
        out[int(code, 16)] = bytes.fromhex(text.decode()).decode("utf-16-be")
    for low, high, target in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]+>|\[[^\]]*\])",
                                        _section(cmap, b"bfrange")):
        low, high = int(low, 16), int(high, 16)
        if target.startswith(b"["):
            for n, text in enumerate(re.findall(rb"<([0-9A-Fa-f]+)>", target)):
                out[low + n] = bytes.fromhex(text.decode()).decode("utf-16-be")
        else:
            first = int(target[1:-1], 16)
            out.update({code: chr(first + code - low) for code in range(low, high + 1)})
    return out


def _section(cmap: bytes, name: bytes) -> bytes:
    return b"\n".join(re.findall(rb"begin" + name + rb"(.*?)end" + name, cmap, re.S))


def staff_headers(roles=None, merchants: dict | None = None) -> dict:
    """Bearer headers made through the service layer (inside an open connection): one signed-in staff member
    per role (password ``<role>-password``), and a fresh API key per merchant, keyed as ``merchants`` says
    ({header key: merchant name})."""
    from gateway.backoffice import auth

    out = {}
    for role in roles or auth.ROLES:
        auth.create_staff(role, f"{role}-password", role)
        out[role] = {"Authorization": f"Bearer {auth.login(role, f'{role}-password')[0]}"}
    for key, name in (merchants or {}).items():
        out[key] = {"Authorization": f"Bearer {auth.create_api_key(name)}"}
    return out
