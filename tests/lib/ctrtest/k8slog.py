"""k8s-file log parsing (spec §6.2).

A record is `<TS> <stream> <F|P> <payload>`; F payloads keep their '\n',
P records carry a fragment followed by a '\n' that is not payload."""
import re

TS = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d"
RECORD_RE = re.compile(rb"(" + TS + rb") (stdout|stderr) ([FP]) ([^\n]*)\n")
HEADER_LEN = 43  # "TS stream " for both stream names (spec §6.2)


class Record:
    __slots__ = ("raw", "ts", "stream", "tag", "payload")

    def __init__(self, raw, ts, stream, tag, payload):
        self.raw, self.ts, self.stream, self.tag = raw, ts, stream, tag
        self.payload = payload

    def __repr__(self):
        return f"Record({self.raw!r})"


def parse(data):
    """Parse the whole log; raise ValueError on any byte that is not part
    of a well-formed record."""
    records, pos = [], 0
    while pos < len(data):
        m = RECORD_RE.match(data, pos)
        if not m:
            raise ValueError(f"malformed k8s log at byte {pos}: "
                             f"{data[pos:pos + 120]!r}")
        ts, stream, tag, body = m.groups()
        payload = body + b"\n" if tag == b"F" else body
        records.append(Record(m.group(0), ts, stream.decode(), tag.decode(),
                              payload))
        pos = m.end()
    return records


def read(path):
    with open(path, "rb") as f:
        return parse(f.read())


def stream_bytes(records, stream):
    """Reassemble one stream's bytes from its P/F records."""
    return b"".join(r.payload for r in records if r.stream == stream)


def lines(records, stream="stdout"):
    """Complete logical lines of a stream (without '\n'); a trailing
    fragment without newline is included as the last element."""
    data = stream_bytes(records, stream)
    out = data.split(b"\n")
    if out and out[-1] == b"":
        out.pop()
    return out
