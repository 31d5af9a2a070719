"""Qualified-name vectors after cncf-tags/container-device-interface ``pkg/parser/parser_test.go`` (N1..N27)."""

import pytest

from gpuctk.cdi import CDIError, names

VALID = [
    ("vendor.com/class=dev", ("vendor.com", "class", "dev")),  # N1
    ("a/b=c", ("a", "b", "c")),  # N2
    ("vendor.com/class=0", ("vendor.com", "class", "0")),  # N3
    ("vendor1.com/class.subclass=dev1", ("vendor1.com", "class.subclass", "dev1")),  # N4
    ("other-vendor1.com/class_1=dev_1", ("other-vendor1.com", "class_1", "dev_1")),  # N5
    (
        "yet_another-vendor2.com/c-lass_2=dev_1:2.3",
        ("yet_another-vendor2.com", "c-lass_2", "dev_1:2.3"),
    ),  # N6
    ("vendor.com/class=1dev", ("vendor.com", "class", "1dev")),  # N19
    ("VENDOR.COM/CLASS=DEV", ("VENDOR.COM", "CLASS", "DEV")),  # N23
    ("v..x/c=d", ("v..x", "c", "d")),  # N24
    ("v" * 300 + "/c=d", ("v" * 300, "c", "d")),  # N27
]

INVALID = [
    ("_invalid.com/class=dev", ("_invalid.com", "class", "dev"), "invalid vendor"),  # N7
    ("invalid2.com-/class=dev", ("invalid2.com-", "class", "dev"), "should end with a letter or digit"),  # N8
    ("invalid3.com/_class=dev", ("invalid3.com", "_class", "dev"), "invalid class"),  # N9
    ("invalid4.com/class_=dev", ("invalid4.com", "class_", "dev"), "invalid class"),  # N10
    (
        "invalid5.com/class=-dev",
        ("invalid5.com", "class", "-dev"),
        "should start with a letter or digit",
    ),  # N11
    (
        "invalid6.com/class=dev:",
        ("invalid6.com", "class", "dev:"),
        "should end with a letter or digit",
    ),  # N12
    ("*.com/*dev=*gpu*", ("*.com", "*dev", "*gpu*"), "invalid vendor"),  # N13
    ("1vendor.com/class=dev", ("1vendor.com", "class", "dev"), "should start with letter"),  # N17
    ("vendor.com/1class=dev", ("vendor.com", "1class", "dev"), "invalid class"),  # N18
    ("vendor.com/class=dev=x", ("vendor.com", "class", "dev=x"), "invalid character '='"),  # N20
    ("vendor.com/cl/ass=dev", ("vendor.com", "cl/ass", "dev"), "invalid character '/'"),  # N21
    ("vendor.com/class=dev name", ("vendor.com", "class", "dev name"), "invalid character ' '"),  # N25
    ("vendor.com/class=dé", ("vendor.com", "class", "dé"), "invalid"),  # N26
]

UNQUALIFIED = [
    "/dev/null",  # N14
    "vendor.com/device2",  # N15
    "vendor3.com=device3",  # N16
    "vendor.com/class=",  # N22
    "vendor.com/=dev",
    "=dev",
    "",
]


@pytest.mark.parametrize(("name", "parts"), VALID)
def test_valid_names(name, parts):
    assert names.parse_qualified_name(name) == parts
    assert names.is_qualified_name(name)
    assert names.qualified_name(*parts) == name


@pytest.mark.parametrize(("name", "split", "message"), INVALID)
def test_invalid_names_still_split(name, split, message):
    assert names.parse_device(name) == split
    assert not names.is_qualified_name(name)
    with pytest.raises(CDIError) as exc:
        names.parse_qualified_name(name)
    assert message in str(exc.value)
    assert str(exc.value).startswith(f'invalid device "{name}": ')


@pytest.mark.parametrize("name", UNQUALIFIED)
def test_unqualified_names(name):
    assert names.parse_device(name) == ("", "", name)
    with pytest.raises(CDIError) as exc:
        names.parse_qualified_name(name)
    assert str(exc.value) == f'unqualified device "{name}", missing vendor'


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "invalid (empty) device name"),
        ("-dev", 'invalid class "-dev", should start with a letter or digit'),  # sic, as the reference
        ("a dev ice", "invalid character ' ' in device name \"a dev ice\""),
        ("dev-", 'invalid name "dev-", should end with a letter or digit'),
        ("x", None),
        ("0", None),
        ("a:b", None),
    ],
)
def test_device_name_messages(name, message):
    assert names.device_name_error(name) == message


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("vendor1.comdevice", None),  # no "/": parse_qualifier gives empty vendor
    ],
)
def test_kind_without_slash_has_empty_vendor(kind, message):
    assert names.parse_qualifier(kind) == ("", "")
    assert names.vendor_error("") == "invalid vendor. empty name"
