"""HL7 v2 ER7 parsing and encoding: segments, fields, repetitions, components, escapes.

The parser is deliberately lenient where real feeds are sloppy (CR, LF or CRLF segment ends,
a UTF-8 BOM, a doubled escape character in MSH-2, trailing empty segments) and strict where a
wrong guess would corrupt data (a message that does not start with MSH, a field separator that
is alphanumeric, an unknown MSH-18 character set).

Field numbers follow the standard: ``seg.raw(3)`` is PID-3 and MSH-1 is the field separator, so
``msh.raw(9)`` is MSH-9 for MSH like for every other segment.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

__all__ = [
    "SUPPORTED_VERSIONS",
    "EncodingCharacters",
    "Field",
    "Hl7ParseError",
    "Message",
    "Segment",
    "charset_codec",
    "decode_message",
    "escape",
    "parse_datetime",
    "parse_message",
    "unescape",
]

SUPPORTED_VERSIONS = frozenset(
    {
        "2.1",
        "2.2",
        "2.3",
        "2.3.1",
        "2.4",
        "2.5",
        "2.5.1",
        "2.6",
        "2.7",
        "2.7.1",
        "2.8",
        "2.8.1",
        "2.8.2",
    }
)
"""MSH-12 version ids the parser accepts."""

_SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")

# HL7 table 0211 (alternate character sets) to Python codecs.
_CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
    "ISO IR14": "shift_jis",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "CNS 11643-1992": "big5",
    "BIG-5": "big5",
    "WINDOWS-1252": "cp1252",
}


class Hl7ParseError(ValueError):
    """A message that cannot be parsed.

    Attributes:
        code: HL7 table 0357 error code for the ERR segment (``100`` segment sequence,
            ``102`` data type, ``203`` unsupported version, ``207`` application error).
        location: ``SEG^seq^field`` of the problem, when known.
        control_id: MSH-10 if it could be read, so a NAK can still echo it.
    """

    def __init__(
        self, message: str, *, code: str = "100", location: str = "", control_id: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.location = location
        self.control_id = control_id


@dataclass(frozen=True, slots=True)
class EncodingCharacters:
    """The delimiters of one message, read from MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @property
    def msh2(self) -> str:
        """The MSH-2 value these characters encode to."""
        return f"{self.component}{self.repetition}{self.escape}{self.subcomponent}{self.truncation}"

    @classmethod
    def from_msh2(cls, field_sep: str, msh2: str) -> EncodingCharacters:
        """Read MSH-2, tolerating the doubled escape character some exporters write."""
        chars = list(msh2)
        if len(chars) >= 4 and chars[2] == chars[3] == "\\":
            del chars[3]
        if len(chars) < 4:
            # Versions 2.1/2.2 feeds sometimes send fewer characters; standard ones fill in.
            defaults = ["^", "~", "\\", "&"]
            chars += defaults[len(chars) :]
        component, repetition, esc, sub = chars[:4]
        truncation = chars[4] if len(chars) > 4 else ""
        seen = {field_sep, component, repetition, esc, sub}
        if len(seen) != 5 or any(c.isalnum() or c in "\r\n" for c in seen):
            raise Hl7ParseError(
                "MSH-2 encoding characters are invalid", code="102", location="MSH^1^2"
            )
        return cls(field_sep, component, repetition, esc, sub, truncation)


DEFAULT_ENCODING = EncodingCharacters()

_FORMAT_ESCAPES = {
    ".br": "\n",
    ".sp": "\n",
    ".fi": "",
    ".nf": "",
    ".ce": "",
    "H": "",
    "N": "",
}


def unescape(text: str, enc: EncodingCharacters = DEFAULT_ENCODING) -> str:
    r"""Resolve escape sequences (``\F\ \S\ \T\ \R\ \E\ \P\ \Xhh\ \.br\`` and others).

    Highlighting (``\H\``, ``\N\``) and character-set switches (``\Cxxyy\``, ``\Mxxyyzz\``)
    are dropped; an unterminated or unknown sequence is kept as written.
    """
    esc = enc.escape
    if esc not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != esc:
            j = text.find(esc, i)
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            i = j
            continue
        end = text.find(esc, i + 1)
        if end < 0:
            out.append(text[i:])
            break
        seq = text[i + 1 : end]
        replacement = _resolve_escape(seq, enc)
        if replacement is None:
            out.append(text[i : end + 1])
        else:
            out.append(replacement)
        i = end + 1
    return "".join(out)


def _resolve_escape(seq: str, enc: EncodingCharacters) -> str | None:
    simple = {
        "F": enc.field,
        "S": enc.component,
        "T": enc.subcomponent,
        "R": enc.repetition,
        "E": enc.escape,
        "P": enc.truncation or "#",
    }
    if seq in simple:
        return simple[seq]
    if seq in _FORMAT_ESCAPES:
        return _FORMAT_ESCAPES[seq]
    if seq[:3] in (".sp", ".in", ".ti", ".sk"):
        return "\n" if seq.startswith(".sp") else ""
    if seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
        try:
            raw = bytes.fromhex(seq[1:])
        except ValueError:
            return None
        return raw.decode("utf-8", errors="replace")
    if seq[:1] in ("C", "M") and len(seq) in (5, 7):
        return ""
    if seq[:1] == "Z":
        return None
    return None


def escape(text: str, enc: EncodingCharacters = DEFAULT_ENCODING) -> str:
    """Escape delimiters and line breaks so ``text`` is safe inside one sub-component."""
    if not any(
        c in text
        for c in (
            enc.escape,
            enc.field,
            enc.component,
            enc.repetition,
            enc.subcomponent,
            "\r",
            "\n",
        )
    ):
        return text
    e = enc.escape
    out = text.replace(e, f"{e}E{e}")
    out = out.replace(enc.field, f"{e}F{e}").replace(enc.component, f"{e}S{e}")
    out = out.replace(enc.subcomponent, f"{e}T{e}").replace(enc.repetition, f"{e}R{e}")
    out = out.replace("\r\n", "\n").replace("\r", "\n")
    return out.replace("\n", f"{e}.br{e}")


class Field:
    """One repetition of a field: components of sub-components, raw until asked."""

    __slots__ = ("_components", "enc", "raw")

    def __init__(self, raw: str, enc: EncodingCharacters) -> None:
        self.raw = raw
        self.enc = enc
        self._components: list[str] | None = None

    @property
    def is_null(self) -> bool:
        """True for the explicit HL7 null ``""`` (the receiver should delete the value)."""
        return self.raw == '""'

    def components(self) -> list[str]:
        """The raw (still escaped) components."""
        if self._components is None:
            self._components = self.raw.split(self.enc.component)
        return self._components

    def raw_component(self, comp: int) -> str:
        """Component ``comp`` (1-based), raw and still escaped, ``""`` when absent."""
        comps = self.components()
        return comps[comp - 1] if 0 < comp <= len(comps) else ""

    def get(self, comp: int = 1, sub: int = 1) -> str | None:
        """Component ``comp``, sub-component ``sub`` (1-based), unescaped; None when empty."""
        value = self.raw_component(comp)
        if not value:
            return None
        if self.enc.subcomponent in value:
            parts = value.split(self.enc.subcomponent)
            value = parts[sub - 1] if sub <= len(parts) else ""
        elif sub > 1:
            return None
        if not value or value == '""':
            return None
        return unescape(value, self.enc)

    def subcomponents(self, comp: int) -> list[str | None]:
        """Every sub-component of component ``comp``, unescaped, None for empty ones."""
        value = self.raw_component(comp)
        return [
            unescape(p, self.enc) if p and p != '""' else None
            for p in value.split(self.enc.subcomponent)
        ]

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"


class Segment:
    """One segment; ``fields[n]`` is field ``n`` raw (``fields[0]`` is the segment name)."""

    __slots__ = ("enc", "fields", "name")

    def __init__(self, name: str, fields: list[str], enc: EncodingCharacters) -> None:
        self.name = name
        self.fields = fields
        self.enc = enc

    def raw(self, n: int) -> str:
        """Field ``n`` exactly as received (escaped, with every repetition)."""
        return self.fields[n] if 0 <= n < len(self.fields) else ""

    def is_null(self, n: int) -> bool:
        """True when field ``n`` is the explicit HL7 null ``""``."""
        return self.raw(n) == '""'

    def reps(self, n: int) -> list[Field]:
        """The non-empty repetitions of field ``n``."""
        raw = self.raw(n)
        if not raw:
            return []
        if self.name == "MSH" and n in (1, 2):
            return [Field(raw, self.enc)]
        return [Field(r, self.enc) for r in raw.split(self.enc.repetition) if r]

    def field(self, n: int, rep: int = 1) -> Field | None:
        """Repetition ``rep`` (1-based) of field ``n``, or None when absent."""
        raw = self.raw(n)
        if not raw:
            return None
        if rep == 1 and self.enc.repetition not in raw:
            return Field(raw, self.enc)
        reps = self.reps(n)
        return reps[rep - 1] if rep <= len(reps) else None

    def get(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str | None:
        """One value, unescaped: field ``n``, repetition, component, sub-component (1-based)."""
        if self.name == "MSH" and n in (1, 2):
            return self.raw(n) or None
        f = self.field(n, rep)
        return f.get(comp, sub) if f is not None else None

    def __repr__(self) -> str:
        return f"Segment({self.name!r}, {len(self.fields) - 1} fields)"


class Message:
    """A parsed HL7 v2 message."""

    __slots__ = ("enc", "segments")

    def __init__(self, segments: list[Segment], enc: EncodingCharacters) -> None:
        self.segments = segments
        self.enc = enc

    @property
    def msh(self) -> Segment:
        """The MSH segment."""
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        """The first segment named ``name``, or None."""
        for seg in self.segments:
            if seg.name == name:
                return seg
        return None

    def all(self, name: str) -> list[Segment]:
        """Every segment named ``name``, in order."""
        return [s for s in self.segments if s.name == name]

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    @property
    def message_code(self) -> str:
        """MSH-9.1, the message type (``ADT``)."""
        return (self.msh.get(9, 1) or "").upper()

    @property
    def trigger_event(self) -> str:
        """MSH-9.2, the trigger event (``A01``)."""
        return (self.msh.get(9, 2) or "").upper()

    @property
    def structure(self) -> str:
        """MSH-9.3, the message structure, or ``TYPE_EVENT`` when absent or non-standard."""
        value = (self.msh.get(9, 3) or "").upper()
        if re.fullmatch(r"[A-Z0-9]{3}_[A-Z0-9]{3}", value):
            return value
        return f"{self.message_code}_{self.trigger_event}"

    @property
    def control_id(self) -> str:
        """MSH-10, the message control id."""
        return self.msh.get(10) or ""

    @property
    def processing_id(self) -> str:
        """MSH-11.1 (P, T or D)."""
        return self.msh.get(11) or ""

    @property
    def version(self) -> str:
        """MSH-12.1, the version id."""
        return self.msh.get(12) or ""

    @property
    def sending_application(self) -> str:
        """MSH-3 as written (all components), escaped as received."""
        return self.msh.raw(3)

    @property
    def sending_facility(self) -> str:
        """MSH-4 as written (all components), escaped as received."""
        return self.msh.raw(4)

    @property
    def accept_ack_type(self) -> str:
        """MSH-15 (AL, NE, ER, SU), empty in original acknowledgment mode."""
        return (self.msh.get(15) or "").upper()

    @property
    def application_ack_type(self) -> str:
        """MSH-16 (AL, NE, ER, SU), empty in original acknowledgment mode."""
        return (self.msh.get(16) or "").upper()

    @property
    def enhanced_mode(self) -> bool:
        """True when the sender asked for enhanced acknowledgments (MSH-15 or MSH-16 set)."""
        return bool(self.accept_ack_type or self.application_ack_type)

    def to_er7(self, segment_end: str = "\r") -> str:
        """Serialise with ``segment_end`` after every segment."""
        sep = self.enc.field
        parts: list[str] = []
        for seg in self.segments:
            if seg.name == "MSH":
                parts.append("MSH" + sep + sep.join(seg.fields[2:]))
            else:
                parts.append(sep.join(seg.fields))
        return segment_end.join(parts) + segment_end

    @classmethod
    def build(
        cls,
        rows: Sequence[Sequence[str | Sequence[str] | None]],
        enc: EncodingCharacters = DEFAULT_ENCODING,
    ) -> Message:
        """Build a message from rows of already-escaped field values.

        Each row is ``[name, field1, field2, ...]``; a field given as a sequence is joined with
        the component separator. For MSH, ``field1`` is skipped (MSH-1 and MSH-2 are written
        from ``enc``) so ``row[3]`` is MSH-3.
        """
        segments: list[Segment] = []
        for row in rows:
            name = str(row[0])
            values = [_join_components(v, enc) for v in row[1:]]
            fields = ["MSH", enc.field, enc.msh2, *values[2:]] if name == "MSH" else [name, *values]
            while len(fields) > 1 and fields[-1] == "" and name != "MSH":
                fields.pop()
            segments.append(Segment(name, fields, enc))
        return cls(segments, enc)


def _join_components(value: str | Sequence[str] | None, enc: EncodingCharacters) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    parts = list(value)
    while parts and not parts[-1]:
        parts.pop()
    return enc.component.join(parts)


def charset_codec(name: str) -> str:
    """The Python codec for an MSH-18 character set name (HL7 table 0211).

    Raises:
        Hl7ParseError: Python has no codec for it.
    """
    key = name.strip().upper()
    if key in _CHARSETS:
        return _CHARSETS[key]
    try:
        return codecs.lookup(name.strip()).name
    except LookupError as exc:
        raise Hl7ParseError(
            f"unsupported character set in MSH-18: {name.strip()[:32]!r}",
            code="207",
            location="MSH^1^18",
        ) from exc


def decode_message(data: bytes, *, fallback_charset: str = "cp1252") -> str:
    """Decode raw message bytes into text, honouring a BOM and MSH-18.

    Without MSH-18 the bytes are read as UTF-8 and, when that fails, as ``fallback_charset``
    (most legacy feeds without MSH-18 are Windows-1252 or Latin-1).

    Raises:
        Hl7ParseError: MSH-18 names a character set Python cannot decode.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    codec = None
    if data[:3] == b"MSH" and len(data) > 8:
        end = len(data)
        for terminator in (b"\r", b"\n"):
            pos = data.find(terminator)
            if 0 <= pos < end:
                end = pos
        header = data[:end]
        parts = header.split(header[3:4])
        if len(parts) > 17 and parts[17]:
            rep = header[4:5] if len(header) > 5 else b"~"
            first = parts[17].split(rep, 1)[0].decode("ascii", errors="replace")
            if first:
                codec = charset_codec(first)
    if codec is not None:
        return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(fallback_charset, errors="replace")


def parse_message(data: bytes | str, *, fallback_charset: str = "cp1252") -> Message:
    """Parse one ER7 message.

    Raises:
        Hl7ParseError: The text is not an HL7 v2 message (no MSH first, bad delimiters or
            segment names).
    """
    text = (
        decode_message(data, fallback_charset=fallback_charset) if isinstance(data, bytes) else data
    )
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.lstrip("\r\n\t \x0b")
    if not text.startswith("MSH") or len(text) < 8:
        raise Hl7ParseError("message does not start with an MSH segment", location="MSH")
    field_sep = text[3]
    lines = _SEGMENT_SPLIT.split(text)
    header = lines[0]
    msh2_end = header.find(field_sep, 4)
    msh2 = header[4:] if msh2_end < 0 else header[4:msh2_end]
    control_id = _peek_control_id(header, field_sep)
    try:
        enc = EncodingCharacters.from_msh2(field_sep, msh2)
    except Hl7ParseError as exc:
        exc.control_id = control_id
        raise
    segments: list[Segment] = []
    for index, line in enumerate(lines):
        line = line.strip("\x00 \t") if index else line
        if not line:
            continue
        if index == 0:
            rest = line[4:].split(field_sep)
            # rest[0] is MSH-2 (possibly with a doubled escape char); keep it as written.
            segments.append(Segment("MSH", ["MSH", field_sep, *rest], enc))
            continue
        name = line[:3]
        if not _SEGMENT_NAME.match(name) or (len(line) > 3 and line[3] != field_sep):
            raise Hl7ParseError(
                f"segment {index + 1} has no valid segment name",
                location=f"{name[:3]}^{index + 1}",
                control_id=control_id,
            )
        segments.append(Segment(name, line.split(field_sep), enc))
    return Message(segments, enc)


def _peek_control_id(header: str, field_sep: str) -> str:
    parts = header.split(field_sep)
    if len(parts) > 9:
        return parts[9].split("^", 1)[0][:199]
    return ""


_TS = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?\s*([+-]\d{4})?$"
)


def parse_datetime(value: str | None) -> tuple[datetime | date | None, str]:
    """Parse an HL7 DTM/TS value into a date or datetime and its precision.

    Returns ``(value, precision)`` with precision ``year``, ``month``, ``day``, ``minute``,
    ``second`` or ``""`` when the text is not a timestamp. Datetimes with an offset are aware;
    ones without are naive (local time of the sender).
    """
    if not value:
        return None, ""
    m = _TS.match(value.strip())
    if not m:
        return None, ""
    year, month, day, hour, minute, second, frac, tz = m.groups()
    try:
        if month is None:
            return date(int(year), 1, 1), "year"
        if day is None:
            return date(int(year), int(month), 1), "month"
        if hour is None:
            return date(int(year), int(month), int(day)), "day"
        tzinfo: timezone | None = None
        if tz:
            sign = 1 if tz[0] == "+" else -1
            offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5]))
            tzinfo = UTC if not offset else timezone(sign * offset)
        micros = int((frac or "0").ljust(6, "0")) if frac else 0
        dt = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute or 0),
            int(second or 0),
            micros,
            tzinfo=tzinfo,
        )
    except ValueError:
        return None, ""
    return dt, ("second" if second else "minute")
