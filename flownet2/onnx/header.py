"""An .onnx file's first input shape and its metadata, read without parsing its weights.

    dims, metadata = read_header("flownet2_bs1_sim_fix.onnx")   # [1, 3, 448, 1024], {"flownet2.weights": ...}

onnx.load parses the whole protobuf (2-3 s and 650 MB for FlowNet2); the shape and the labels sit in
a few hundred bytes of it. This walks the protobuf wire format (varint keys, length-delimited fields)
and seeks past every field it does not need, the initializers included.
Field numbers (onnx.proto3): ModelProto graph = 7, metadata_props = 14; GraphProto input = 11;
ValueInfoProto type = 2; TypeProto tensor_type = 1; TypeProto.Tensor shape = 2; TensorShapeProto dim = 1;
Dimension dim_value = 1; StringStringEntryProto key = 1, value = 2.
"""
import os

from ..errors import Flownet2Error

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def read_header(path):
    """([dims of the graph's first input; 0 where symbolic], {metadata key: value}) of an .onnx file."""
    try:
        with open(path, "rb") as f:
            dims, metadata = None, {}
            for number, wire, value in _fields(f, os.fstat(f.fileno()).st_size):
                if number == 7 and wire == LENGTH and dims is None:
                    first = _first(f, value, 11)
                    dims = [] if first is None else _dims(f, first)
                elif number == 14 and wire == LENGTH:
                    entry = dict(_strings(f, value))
                    metadata[entry.get(1, "")] = entry.get(2, "")
    except (OSError, ValueError, EOFError) as e:
        raise Flownet2Error(f"{path}: not a readable ONNX model ({e})") from None
    if dims is None:
        raise Flownet2Error(f"{path}: not an ONNX model (no graph)")
    return dims, metadata


def _varint(f):
    result = shift = 0
    while True:
        byte = f.read(1)
        if not byte:
            raise EOFError("the file ends inside a field")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _fields(f, end):
    """(field number, wire type, value) up to byte `end`: a varint's value, or (start, length) of a
    length-delimited field, with the file at its start when yielded and past it when resumed."""
    while f.tell() < end:
        key = _varint(f)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            yield number, wire, _varint(f)
        elif wire == LENGTH:
            length = _varint(f)
            start = f.tell()
            if start + length > end:
                raise ValueError("a field runs past its message")
            yield number, wire, (start, length)
            f.seek(start + length)
        elif wire in (FIXED64, FIXED32):
            f.seek(8 if wire == FIXED64 else 4, 1)
        else:
            raise ValueError(f"wire type {wire} is not protobuf 3")


def _first(f, span, number):
    """(start, length) of the first length-delimited field `number` inside `span`, or None."""
    start, length = span
    f.seek(start)
    for n, wire, value in _fields(f, start + length):
        if n == number and wire == LENGTH:
            return value
    return None


def _dims(f, value_info):
    """The dims of a ValueInfoProto's tensor type (0 for a symbolic one)."""
    span = value_info
    for number in (2, 1, 2):  # type -> tensor_type -> shape
        span = _first(f, span, number)
        if span is None:
            return []
    dims = []
    start, length = span
    f.seek(start)
    for n, wire, dim in _fields(f, start + length):
        if n == 1 and wire == LENGTH:
            dims.append(_dim_value(f, dim))
    return dims


def _dim_value(f, span):
    start, length = span
    f.seek(start)
    for n, wire, value in _fields(f, start + length):
        if n == 1 and wire == VARINT:
            return value
    return 0


def _strings(f, span):
    """(field number, text) of the length-delimited fields inside `span`."""
    start, length = span
    f.seek(start)
    found = [(n, value) for n, wire, value in _fields(f, start + length) if wire == LENGTH]
    texts = []
    for n, (at, size) in found:
        f.seek(at)
        texts.append((n, f.read(size).decode("utf-8", "replace")))
    return texts
