#!/usr/bin/python3
# Writes the seed corpora of the NBD server harnesses:
#   corpus/nbd-server-handshake/  whole client sides of sessions: option
#       haggling of every kind (and some refusals), then a few requests
#   corpus/nbd-server-request/    a selector byte (export | structured<<2 |
#       meta<<3 | extended<<4, see nbd-server-request.c) followed by
#       requests (extended ones with extended headers)
# Exports of the harness: "" (memory 1M), "ro", "pool", "a" (min block 512,
# max payload 64K, context x-fuzz:ctx).  Run from anywhere.
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
IHAVEOPT = 0x49484156454F5054
REQ = 0x25609513
EXT_REQ = 0x21e41c71
(EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO, SR, LISTMETA,
 SETMETA, EXT) = 1, 2, 3, 5, 6, 7, 8, 9, 10, 11
(READ, WRITE, DISC, FLUSH, TRIM, CACHE, ZERO, BS) = range(8)
FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO, PAYLOAD_LEN = 1, 2, 4, 8, 16, 32


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def name(n):
    return struct.pack(">I", len(n)) + n


def info(n, reqs=(3,)):
    return name(n) + struct.pack(">H", len(reqs)) + b"".join(
        struct.pack(">H", r) for r in reqs)


def meta(n, queries):
    return name(n) + struct.pack(">I", len(queries)) + b"".join(
        name(q) for q in queries)


def req(t, off=0, length=0, flags=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQI", REQ, flags, t, cookie, off,
                       length) + payload


def xreq(t, off=0, length=0, flags=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQQ", EXT_REQ, flags, t, cookie, off,
                       length) + payload


def xwrite(off, payload, flags=0, cookie=1):
    return xreq(WRITE, off, len(payload), flags | PAYLOAD_LEN, cookie,
                payload)


def xstatus(off, effect, ids, flags=0, cookie=5):
    # The block status payload form: u64 effect length, u32 context ids.
    p = struct.pack(">Q", effect) + b"".join(struct.pack(">I", i)
                                             for i in ids)
    return xreq(BS, off, len(p), flags | PAYLOAD_LEN, cookie, p)


FLAGS = struct.pack(">I", 3)
some_io = (req(WRITE, 0, 512, 0, 1, b"\xab" * 512) + req(READ, 0, 4096)
           + req(FLUSH) + req(ZERO, 4096, 8192, NO_HOLE)
           + req(TRIM, 0, 512) + req(CACHE, 0, 65536)
           + req(READ, 512, 1024, DF) + req(DISC))

ext_io = (xwrite(0, b"\xab" * 512) + xreq(READ, 0, 4096) + xreq(FLUSH)
          + xreq(ZERO, 4096, 8192, NO_HOLE) + xreq(TRIM, 0, 512)
          + xreq(CACHE, 0, 65536) + xreq(READ, 512, 1024, DF)
          + xreq(BS, 0, 1 << 20) + xreq(BS, 0, 4096, REQ_ONE)
          + xreq(DISC))
# Extended requests the server must refuse but stay in step after:
# WRITE without PAYLOAD_LEN, payloads on commands without one, lengths
# beyond 32 bits, a READ over the maximum payload.
ext_errors = (xreq(WRITE, 0, 512) + xreq(READ, 0, 16, PAYLOAD_LEN, 2,
              b"p" * 16) + xreq(BS, 0, 8, PAYLOAD_LEN, 3, b"\0" * 8)
              + xreq(TRIM, 0, 1 << 40) + xreq(ZERO, 0, (1 << 64) - 1)
              + xreq(READ, 0, 1 << 33) + xreq(CACHE, 1 << 19, 1 << 36)
              + xreq(99, 0, 0, PAYLOAD_LEN, 4, b"q")
              + xreq(READ, 0, 512) + xreq(WRITE, 0, 1 << 32, PAYLOAD_LEN))

handshake = {
    "list": FLAGS + opt(LIST) + opt(ABORT),
    "info-all": FLAGS + opt(INFO, info(b"", (0, 1, 2, 3))) + opt(ABORT),
    "go-simple": FLAGS + opt(GO, info(b"")) + some_io,
    "go-structured": FLAGS + opt(SR) + opt(SETMETA, meta(
        b"", [b"base:allocation"])) + opt(GO, info(b"")) + some_io
        + req(BS, 0, 1 << 20) + req(BS, 0, 4096, REQ_ONE),
    "export-name": struct.pack(">I", 1) + opt(EXPORT_NAME, b"ro")
        + req(READ, 0, 512) + req(WRITE, 0, 1, 0, 2, b"x"),
    "list-meta": FLAGS + opt(SR) + opt(LISTMETA, meta(b"a", [])) + opt(
        LISTMETA, meta(b"a", [b"base:", b"x-fuzz:"])) + opt(ABORT),
    "pool": FLAGS + opt(SR) + opt(GO, info(b"pool")) + some_io,
    "aligned": FLAGS + opt(SR) + opt(SETMETA, meta(
        b"a", [b"base:allocation", b"x-fuzz:ctx"])) + opt(GO, info(b"a"))
        + req(BS, 512, 8192) + req(READ, 100, 512) + req(DISC),
    "go-extended": FLAGS + opt(SR) + opt(EXT) + opt(SETMETA, meta(
        b"", [b"base:allocation"])) + opt(GO, info(b"")) + ext_io,
    "ext-refusals": FLAGS + opt(EXT, b"data") + opt(EXT) + opt(EXT)
        + opt(SR) + opt(EXPORT_NAME, b""),
    "ext-pool": FLAGS + opt(EXT) + opt(GO, info(b"pool")) + ext_errors,
    "refusals": FLAGS + opt(STARTTLS) + opt(99, b"junk") + opt(
        SETMETA, meta(b"", [b"base:allocation"])) + opt(
        GO, info(b"nope")) + opt(ABORT),
}
request = {
    "inline-simple": bytes([0]) + some_io,
    "inline-structured": bytes([4 | 8]) + some_io + req(BS, 0, 1 << 20),
    "ro": bytes([1 | 4]) + some_io,
    "pool": bytes([2 | 4 | 8]) + some_io + req(BS, 4096, 65536, REQ_ONE),
    "aligned": bytes([3 | 4 | 8]) + req(WRITE, 512, 512, FUA, 1, b"\0" * 512)
        + req(ZERO, 0, 1024, FAST_ZERO) + req(BS, 0, 65536)
        + req(READ, 0, 65536 + 512) + req(READ, 3, 512) + req(DISC),
    "ext-inline": bytes([16 | 8]) + ext_io,
    "ext-pool": bytes([2 | 16 | 8]) + ext_io,
    "ext-aligned": bytes([3 | 16 | 8]) + xwrite(512, b"\0" * 512, FUA)
        + xreq(ZERO, 0, 1024, FAST_ZERO) + xreq(BS, 0, 65536)
        + xreq(READ, 0, 65536 + 512) + xreq(READ, 3, 512)
        + xstatus(0, 65536, [2]) + xstatus(512, 4096, [2, 1], REQ_ONE)
        + xstatus(0, 4096, [1, 1]) + xstatus(0, 4096, [9]) + xreq(DISC),
    "ext-errors": bytes([16]) + ext_errors,
    "ext-compact-request": bytes([16]) + req(READ, 0, 512) + b"\0" * 4,
    "errors": bytes([4]) + req(READ, 1 << 20, 1) + req(99) + req(
        WRITE, (1 << 20) - 1, 2, 0, 1, b"zz") + req(READ, 0, 512, 1 << 9)
        + req(READ, 0, 0) + req(DISC),
}

for sub, seeds in (("nbd-server-handshake", handshake),
                   ("nbd-server-request", request)):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
