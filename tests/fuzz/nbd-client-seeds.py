#!/usr/bin/python3
# Writes the seed corpus of fuzz-nbd-client-reply.c into corpus/nbd-client/:
# whole server sides of sessions that answer the harness's fixed requests
# (cookies gen 1, slots 0..6: read 4096@0, read 65536@4096, write 512@0,
# flush, zero 8192@0, trim 4096@8192, block status 65536@0).  The harness
# asks for extended headers only when the first option reply names them,
# so seeds from before the extension keep negotiating as they did.
# Run it from anywhere: ./nbd-client-seeds.py
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   "corpus", "nbd-client")
NBDMAGIC, IHAVEOPT = 0x4E42444D41474943, 0x49484156454F5054
REPMAGIC = 0x0003E889045565A9
SIMPLE, STRUCT, EXTREP = 0x67446698, 0x668E33EF, 0x6E8A278C
ACK, INFO, META = 1, 3, 4
UNSUP = 0x80000001
GO, EXPORT_NAME, SR, SETMETA, EXT = 7, 1, 8, 10, 11
FLAGS = 0x0001 | 0x0004 | 0x0008 | 0x0020 | 0x0040 | 0x0100   # flush fua trim zeroes mc
DONE = 1


def cookie(slot):
    return (1 << 32) | slot


def hello(flags=3):
    return struct.pack(">QQH", NBDMAGIC, IHAVEOPT, flags)


def rep(opt, typ, data=b""):
    return struct.pack(">QIII", REPMAGIC, opt, typ, len(data)) + data


def go(size=1 << 20, flags=FLAGS, block=(1, 4096, 32 << 20)):
    r = rep(GO, INFO, struct.pack(">HQH", 0, size, flags))
    if block:
        r += rep(GO, INFO, struct.pack(">HIII", 3, *block))
    r += rep(GO, INFO, struct.pack(">H", 2) + b"a description")
    return r + rep(GO, ACK)


def chunk(flags, typ, slot, payload=b""):
    return struct.pack(">IHHQI", STRUCT, flags, typ, cookie(slot),
                       len(payload)) + payload


def simple(slot, err=0, data=b""):
    return struct.pack(">IIQ", SIMPLE, err, cookie(slot)) + data


def data_chunk(slot, off, data, done=False):
    return chunk(DONE if done else 0, 1, slot, struct.pack(">Q", off) + data)


def structured_replies():
    r = data_chunk(0, 0, b"\x11" * 4096, True)
    r += chunk(0, 2, 1, struct.pack(">QI", 4096 + 32768, 32768))  # hole
    r += data_chunk(1, 4096, b"\x22" * 32768)
    r += chunk(DONE, 0, 1)
    r += simple(2) + simple(3) + simple(4) + chunk(DONE, 0, 5)
    r += chunk(DONE, 5, 6, struct.pack(">IIIII", 7, 4096, 3, 61440, 0))
    return r


def handshake_structured():
    return (hello() + rep(SR, ACK)
            + rep(SETMETA, META, struct.pack(">I", 7) + b"base:allocation")
            + rep(SETMETA, ACK) + go())


# The requests' offsets, which extended reply headers echo.
OFFSETS = [0, 4096, 0, 0, 0, 8192, 0]


def xchunk(flags, typ, slot, payload=b"", off=None):
    off = OFFSETS[slot] if off is None else off
    return struct.pack(">IHHQQQ", EXTREP, flags, typ, cookie(slot), off,
                       len(payload)) + payload


def handshake_extended():
    return (hello() + rep(EXT, ACK)
            + rep(SETMETA, META, struct.pack(">I", 7) + b"base:allocation")
            + rep(SETMETA, ACK) + go())


def extended_replies():
    r = xchunk(DONE, 1, 0, struct.pack(">Q", 0) + b"\x11" * 4096)
    r += xchunk(0, 2, 1, struct.pack(">QI", 4096 + 32768, 32768))  # hole
    r += xchunk(0, 1, 1, struct.pack(">Q", 4096) + b"\x22" * 32768)
    r += xchunk(DONE, 0, 1)
    r += xchunk(DONE, 0, 2) + xchunk(DONE, 0, 3) + xchunk(DONE, 0, 4)
    r += xchunk(DONE, 0, 5)
    r += xchunk(DONE, 6, 6, struct.pack(">IIQQQQ", 7, 2, 4096, 3,
                                        1 << 33, 0))
    return r


seeds = {
    "extended": handshake_extended() + extended_replies(),
    "extended-errors": handshake_extended()
              + xchunk(DONE, 0x8001, 0, struct.pack(">IH", 5, 4) + b"oops")
              + xchunk(DONE, 0x8002, 1, struct.pack(">IH", 28, 0)
                       + struct.pack(">Q", 8192))
              + xchunk(DONE, 0x8001, 2, struct.pack(">IH", 1, 0))
              + xchunk(DONE, 0, 3) + xchunk(DONE, 0, 4) + xchunk(DONE, 0, 5)
              + xchunk(DONE, 0x8001, 6, struct.pack(">IH", 22, 0)),
    "extended-refused": hello() + rep(EXT, UNSUP) + rep(SR, ACK)
              + rep(SETMETA, META, struct.pack(">I", 7) + b"base:allocation")
              + rep(SETMETA, ACK) + go() + structured_replies(),
    "structured": handshake_structured() + structured_replies(),
    "simple": hello() + rep(SR, UNSUP) + go()
              + simple(1, 0, b"\x33" * 65536) + simple(0, 0, b"\x44" * 4096)
              + simple(2) + simple(3) + simple(4) + simple(5),
    "errors": handshake_structured()
              + chunk(DONE, 0x8001, 0, struct.pack(">IH", 5, 4) + b"oops")
              + chunk(DONE, 0x8002, 1, struct.pack(">IH", 28, 0)
                      + struct.pack(">Q", 8192))
              + simple(2, 1) + simple(3, 5) + simple(4, 22) + simple(5, 95)
              + chunk(DONE, 0x8001, 6, struct.pack(">IH", 22, 0)),
    "export-name": hello() + rep(SR, ACK) + rep(SETMETA, UNSUP)
                   + rep(GO, UNSUP)
                   + struct.pack(">QH", 1 << 20, FLAGS) + structured_replies(),
    "oldnewstyle": hello(0) + struct.pack(">QH", 1 << 20, FLAGS) + b"\0" * 124
                   + simple(0, 0, b"\x55" * 4096),
    "blocksize": hello() + rep(SR, ACK) + rep(SETMETA, ACK)
                 + go(block=(512, 4096, 8192))
                 + data_chunk(0, 0, b"\x66" * 4096, True)
                 + b"".join(data_chunk(s, 4096 + 8192 * (s - 1),
                                       b"\x77" * 8192, True)
                            for s in range(1, 9)),
}

os.makedirs(OUT, exist_ok=True)
for name, blob in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(blob)
print("wrote", len(seeds), "seeds to", OUT)
