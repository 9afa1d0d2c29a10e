import pytest
from hl7v2_helpers import sample

from adapters.hl7v2 import Hl7ParseError, parse_message
from adapters.hl7v2._parser import SUPPORTED_VERSIONS, escape, unescape

BASE = [
    "MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101120000||ADT^A01^ADT_A01|X1|P|2.5.1",
    "PID|1||A1^^^H&1.2.3&ISO^MR~B2^^^SSA^SS||Doe^Jo^^^Dr||19700101|M",
    "ZPI|custom|value",
]


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_terminators(sep):
    msg = parse_message(sep.join(BASE).encode() + sep.encode())
    assert [s.name for s in msg] == ["MSH", "PID", "ZPI"]
    assert msg.first("ZPI").get(2) == "value"


def test_bom_and_header_fields():
    msg = parse_message(b"\xef\xbb\xbf" + "\r".join(BASE).encode())
    assert msg.message_code == "ADT"
    assert msg.trigger_event == "A01"
    assert msg.structure == "ADT_A01"
    assert msg.control_id == "X1"
    assert msg.version == "2.5.1"
    assert msg.msh.get(1) == "|"
    assert msg.msh.get(2) == "^~\\&"


def test_repetitions_components_subcomponents():
    pid = parse_message("\r".join(BASE)).first("PID")
    reps = pid.reps(3)
    assert [r.get(1) for r in reps] == ["A1", "B2"]
    assert reps[0].get(4, 2) == "1.2.3"
    assert pid.get(3, 5, rep=2) == "SS"
    assert pid.get(5, 5) == "Dr"


def test_custom_encoding_characters():
    text = "MSH*:!%@*APP*FAC*R*RF*2024**ORU:R01*Y9*P*2.4\rOBX*1*ST*C:D:L**a!b*x@y"
    msg = parse_message(text)
    obx = msg.first("OBX")
    assert msg.trigger_event == "R01"
    assert [f.raw for f in obx.reps(5)] == ["a", "b"]
    assert obx.get(6, 1, 2) == "y"


def test_escape_sequences_round_trip():
    raw = "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\X41\\\\H\\h\\N\\"
    assert unescape(raw) == "a|b^c&d~e\\f\ngAh"
    text = "x|y^z&w~v\\u\nline"
    assert unescape(escape(text)) == text


def test_null_value_and_missing():
    msg = parse_message('MSH|^~\\&|A|B|C|D|2024||ADT^A08|1|P|2.3\rPID|1||X||""')
    pid = msg.first("PID")
    assert pid.is_null(5)
    assert pid.get(5) is None
    assert pid.get(30) is None


def test_doubled_escape_character_is_tolerated():
    msg = parse_message(sample("sample_unix.hl7"))
    assert msg.enc.escape == "\\" and msg.enc.subcomponent == "&"
    assert msg.first("PID").get(3) == "PID1234"


def test_msh18_character_set():
    text = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||8859/1\rPID|1||1||M\xfcller^J"
    msg = parse_message(text.encode("latin-1"))
    assert msg.first("PID").get(5) == "Müller"


def test_utf8_without_msh18_and_fallback():
    utf8 = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||1||Søren".encode()
    assert parse_message(utf8).first("PID").get(5) == "Søren"
    cp1252 = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||1||Søren".encode("cp1252")
    assert parse_message(cp1252).first("PID").get(5) == "Søren"


def test_unknown_charset_rejected():
    with pytest.raises(Hl7ParseError) as info:
        parse_message(b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||KLINGON\r")
    assert info.value.code == "207"


@pytest.mark.parametrize("text", ["", "HELLO", "PID|1\rMSH|^~\\&", "MSH|^~\\&|A\rP D|1"])
def test_invalid_messages(text):
    with pytest.raises(Hl7ParseError):
        parse_message(text)


def test_versions():
    for version in (
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
    ):
        assert version in SUPPORTED_VERSIONS


def test_corpus_edge_cases_parse():
    broken = parse_message(sample("Sample-BrokenCharacterMessage.txt"))
    assert broken.first("PID").get(3, 2, rep=2) == "\\"
    orm = parse_message(sample("Sample-ORM.txt"))
    notes = [n.get(3) for n in orm.all("NTE")]
    assert notes[0] == "some text\nsome text after new line\nissue Efferent-Health#82"
    assert "\r\n" in notes[1]


def test_to_er7_round_trip():
    msg = parse_message("\n".join(BASE))
    assert msg.to_er7() == "\r".join(BASE) + "\r"
