"""The hop's own urlencoded parser reads exactly what the standard library's parse_qsl reads (first value per
name), for Africa's Talking's real forms and for any text at all."""
from urllib.parse import parse_qsl, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ussd.views import FORM_FIELDS_MAX, _urlencoded


def reference(body: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=FORM_FIELDS_MAX)
    except ValueError:
        return {}
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def test_a_real_hop_form():
    body = urlencode({"sessionId": "ATUid_a1b2", "serviceCode": "*384*1234#", "phoneNumber": "+254711000001",
                      "text": "1*ACC 42*500", "networkCode": "63902"})
    assert _urlencoded(body) == reference(body) == {
        "sessionId": "ATUid_a1b2", "serviceCode": "*384*1234#", "phoneNumber": "+254711000001",
        "text": "1*ACC 42*500", "networkCode": "63902"}


def test_repeated_blank_and_bare_names():
    body = "text=1&text=2&&phoneNumber=&sessionId&a%3Db=c%26d&x=%ZZ%e2%82"
    assert _urlencoded(body) == reference(body)


def test_more_fields_than_any_hop_is_no_form():
    body = "&".join(f"f{i}=v" for i in range(FORM_FIELDS_MAX + 1))
    assert _urlencoded(body) == reference(body) == {}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab=&%+2AFzé*#~ "), max_size=60))
def test_any_body_reads_as_parse_qsl_reads_it(body):
    assert _urlencoded(body) == reference(body)
