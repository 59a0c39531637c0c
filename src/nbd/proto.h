/* NBD protocol constants and wire layouts (fixed newstyle), shared by the
 * server and the client.  Source: the NBD protocol specification
 * (NetworkBlockDevice/nbd doc/proto.md).  All integers on the wire are
 * big-endian; use the get/put helpers below, never cast packed structs. */
#ifndef R3M_NBD_PROTO_H
#define R3M_NBD_PROTO_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

/* Magic numbers. */
#define NBD_MAGIC              UINT64_C (0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_IHAVEOPT           UINT64_C (0x49484156454F5054) /* "IHAVEOPT" */
#define NBD_OPT_REPLY_MAGIC    UINT64_C (0x0003e889045565a9)
#define NBD_REQUEST_MAGIC      UINT32_C (0x25609513)
#define NBD_EXT_REQUEST_MAGIC  UINT32_C (0x21e41c71)
#define NBD_SIMPLE_REPLY_MAGIC UINT32_C (0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC UINT32_C (0x668e33ef)
#define NBD_EXT_REPLY_MAGIC    UINT32_C (0x6e8a278c)

/* Handshake flags (server, u16) and client flags (u32). */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES      (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE NBD_FLAG_FIXED_NEWSTYLE
#define NBD_FLAG_C_NO_ZEROES      NBD_FLAG_NO_ZEROES

/* Options. */
#define NBD_OPT_EXPORT_NAME      1
#define NBD_OPT_ABORT            2
#define NBD_OPT_LIST             3
#define NBD_OPT_STARTTLS         5
#define NBD_OPT_INFO             6
#define NBD_OPT_GO               7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10
#define NBD_OPT_EXTENDED_HEADERS 11

/* Option reply types; errors have bit 31 set. */
#define NBD_REP_ACK          1
#define NBD_REP_SERVER       2
#define NBD_REP_INFO         3
#define NBD_REP_META_CONTEXT 4
#define NBD_REP_ERR(n)       (UINT32_C (0x80000000) | (n))
#define NBD_REP_ERR_UNSUP    NBD_REP_ERR (1)
#define NBD_REP_ERR_POLICY   NBD_REP_ERR (2)
#define NBD_REP_ERR_INVALID  NBD_REP_ERR (3)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR (4)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR (5)
#define NBD_REP_ERR_UNKNOWN  NBD_REP_ERR (6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR (7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR (8)
#define NBD_REP_ERR_TOO_BIG  NBD_REP_ERR (9)
#define NBD_REP_ERR_EXT_HEADER_REQD NBD_REP_ERR (10)

/* Info types in NBD_REP_INFO. */
#define NBD_INFO_EXPORT      0
#define NBD_INFO_NAME        1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE  3

/* Transmission flags (u16). */
#define NBD_FLAG_HAS_FLAGS         (1u << 0)
#define NBD_FLAG_READ_ONLY         (1u << 1)
#define NBD_FLAG_SEND_FLUSH        (1u << 2)
#define NBD_FLAG_SEND_FUA          (1u << 3)
#define NBD_FLAG_ROTATIONAL        (1u << 4)
#define NBD_FLAG_SEND_TRIM         (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF           (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN    (1u << 8)
#define NBD_FLAG_SEND_RESIZE       (1u << 9)
#define NBD_FLAG_SEND_CACHE        (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO    (1u << 11)
#define NBD_FLAG_BLOCK_STAT_PAYLOAD (1u << 12)

/* Commands. */
#define NBD_CMD_READ         0
#define NBD_CMD_WRITE        1
#define NBD_CMD_DISC         2
#define NBD_CMD_FLUSH        3
#define NBD_CMD_TRIM         4
#define NBD_CMD_CACHE        5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7
#define NBD_CMD_RESIZE       8

/* Command flags (u16). */
#define NBD_CMD_FLAG_FUA         (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE     (1u << 1)
#define NBD_CMD_FLAG_DF          (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE     (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO   (1u << 4)
#define NBD_CMD_FLAG_PAYLOAD_LEN (1u << 5)

/* Structured reply flags and chunk types (5 is BLOCK_STATUS, as in the
 * spec, qemu, nbdkit and libnbd; the reference nbd.h's 3 is wrong). */
#define NBD_REPLY_FLAG_DONE         (1u << 0)
#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_OFFSET_HOLE  2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6
#define NBD_REPLY_TYPE_ERROR        ((1u << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1u << 15) + 2)

/* base:allocation status flags. */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* Errors on the wire (values fixed by the spec, not the host's errno). */
#define NBD_EPERM      1
#define NBD_EIO        5
#define NBD_ENOMEM     12
#define NBD_EINVAL     22
#define NBD_ENOSPC     28
#define NBD_EOVERFLOW  75
#define NBD_ENOTSUP    95
#define NBD_ESHUTDOWN  108

/* Sizes of fixed parts. */
#define NBD_HELLO_SIZE        18  /* magic, ihaveopt, u16 flags */
#define NBD_OPT_HEADER_SIZE   16  /* ihaveopt, u32 option, u32 length */
#define NBD_OPT_REPLY_SIZE    20  /* magic, u32 option, u32 type, u32 len */
#define NBD_REQUEST_SIZE      28
#define NBD_SIMPLE_REPLY_SIZE 16
#define NBD_CHUNK_HEADER_SIZE 20
#define NBD_EXT_REQUEST_SIZE  32  /* NBD_OPT_EXTENDED_HEADERS: 64-bit length */
#define NBD_EXT_REPLY_SIZE    32  /* ... and every reply carries the offset */

/* Limits: the spec says 32 MiB payloads must never be treated as abuse. */
#define NBD_MAX_STRING   4096           /* export names, descriptions */
#define NBD_MAX_PAYLOAD  (32u << 20)
#define NBD_DEFAULT_PORT 10809

/* Big-endian accessors for unaligned wire buffers. */
static inline uint16_t nbd_get16 (const void *p)
{ uint16_t v; memcpy (&v, p, 2); return be16toh (v); }
static inline uint32_t nbd_get32 (const void *p)
{ uint32_t v; memcpy (&v, p, 4); return be32toh (v); }
static inline uint64_t nbd_get64 (const void *p)
{ uint64_t v; memcpy (&v, p, 8); return be64toh (v); }
static inline void nbd_put16 (void *p, uint16_t v)
{ v = htobe16 (v); memcpy (p, &v, 2); }
static inline void nbd_put32 (void *p, uint32_t v)
{ v = htobe32 (v); memcpy (p, &v, 4); }
static inline void nbd_put64 (void *p, uint64_t v)
{ v = htobe64 (v); memcpy (p, &v, 8); }

#endif /* R3M_NBD_PROTO_H */
