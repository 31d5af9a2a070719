"""Annotation vectors after cncf-tags/container-device-interface ``pkg/cdi/annotations_test.go`` and the CRI +
annotation merge of containerd ``pkg/cri`` / CRI-O ``internal/factory/container/device_linux.go``."""

import pytest

from gpuctk.cdi import CDIError
from gpuctk.cdi.annotations import (
    annotation_key,
    annotation_value,
    merge_device_requests,
    parse_annotations,
    update_annotations,
)


@pytest.mark.parametrize(
    ("plugin", "device", "key"),
    [
        ("vendor.class", "device", "cdi.k8s.io/vendor.class_device"),
        ("v-e.n_d.or.cl-as_s", "d-e/v/i/c-e", "cdi.k8s.io/v-e.n_d.or.cl-as_s_d-e_v_i_c-e"),
    ],
)
def test_annotation_key(plugin, device, key):
    assert annotation_key(plugin, device) == key


@pytest.mark.parametrize(
    ("plugin", "device", "message"),
    [
        ("", "device", "invalid plugin name, empty"),
        ("vendor.class", "", "invalid deviceID, empty"),
        ("_vendor.class", "device", "first '_' should be alphanumeric"),
        ("vendor.class", "device_", "last '_' should be alphanumeric"),
        ("ven.dor-cl+ass", "device", "invalid character '+'"),
        ("vendor.class", "dev+ice", "invalid character '+'"),
        ("a" * 57, "device", "too long"),
    ],
)
def test_invalid_annotation_key(plugin, device, message):
    with pytest.raises(CDIError) as exc:
        annotation_key(plugin, device)
    assert message in str(exc.value)


def test_update_annotations():
    devices = [f"vendor.com/class=device{i}" for i in (1, 2, 3)]
    orig = {"other": "x"}
    out = update_annotations(orig, "vendor.class", "device", devices)
    assert out == {
        "other": "x",
        "cdi.k8s.io/vendor.class_device": "vendor.com/class=device1,vendor.com/class=device2,vendor.com/class=device3",
    }
    assert orig == {"other": "x"}
    assert update_annotations(None, "p", "d", devices[:1]) == {"cdi.k8s.io/p_d": devices[0]}
    with pytest.raises(CDIError, match=r'key "cdi\.k8s\.io/vendor\.class_device" used'):
        update_annotations(out, "vendor.class", "device", devices)
    for bad in ("vendor2.com/device2", "/dev/null"):
        with pytest.raises(CDIError):
            update_annotations({}, "vendor.class", "device", [devices[0], bad])
    with pytest.raises(CDIError, match="CDI annotation failed: invalid plugin name, empty"):
        update_annotations({}, "", "device", devices)
    assert annotation_value(devices[:2]) == "vendor.com/class=device1,vendor.com/class=device2"


def test_parse_annotations():
    ann = {
        "cdi.k8s.io/vfio17": "nvidia.com/gpu=0",
        "cdi.k8s.io/vfio18": "nvidia.com/gpu=1,nvidia.com/gpu=2",
        "not-cdi": "garbage",
        "cdi.k8s.io/anything-goes-here!": "vendor.com/class=x",  # key rest not validated
    }
    keys, devices = parse_annotations(ann)
    assert keys == ["cdi.k8s.io/vfio17", "cdi.k8s.io/vfio18", "cdi.k8s.io/anything-goes-here!"]
    assert devices == ["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=2", "vendor.com/class=x"]
    assert parse_annotations({}) == ([], [])
    assert parse_annotations({"x.io/a": "v.com/c=d"}, prefixes=("x.io/",)) == (["x.io/a"], ["v.com/c=d"])


@pytest.mark.parametrize("value", ["vendor3.com=device3", "/dev/null", "", "v.com/c=a, v.com/c=b"])
def test_parse_annotations_invalid(value):
    with pytest.raises(CDIError, match="invalid CDI device name"):
        parse_annotations({"cdi.k8s.io/x": value})


def test_merge_cri_and_annotations():
    ann = {"cdi.k8s.io/a": "v.com/c=1,v.com/c=2", "cdi.k8s.io/b": "v.com/c=3,v.com/c=1"}
    assert merge_device_requests(["v.com/c=2", "v.com/c=9", "v.com/c=2"], ann) == [
        "v.com/c=2",
        "v.com/c=9",
        "v.com/c=1",
        "v.com/c=3",
    ]
    assert merge_device_requests(None, None) == []
    with pytest.raises(CDIError, match="failed to parse CDI device annotations"):
        merge_device_requests([], {"cdi.k8s.io/a": "bad"})
