/*
 * _digest.c: the bdr-rdb-1 content digest of a Redis RDB file, in C.
 *
 * The digest is defined in bdr/engines/redis/rdb/__init__.py (and, as code, in
 * canonical.py); reference.py is the same computation in Python, and the tests check
 * that both agree on every file they make. This file parses an RDB (versions 1 to 12:
 * what Redis 2.x to 7.x writes) from memory (an mmap of the file, a window of it resident
 * at a time, or a buffer), with the GIL released, and returns the digest, per-db counts,
 * aux fields and the bottom-k sample of per-key hashes.
 *
 * Errors never crash: every read is bounds-checked and a problem longjmps back to the
 * entry point with a message and the byte offset where it was found.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NORETURN __attribute__((noreturn))
#define INLINE static inline __attribute__((always_inline))
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#define NORETURN
#define INLINE static inline
#endif

/* ---------------------------------------------------------------------------------------
 * Byte order helpers
 * ------------------------------------------------------------------------------------- */

INLINE uint64_t load_le64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

INLINE uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

INLINE uint16_t load_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

INLINE uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

INLINE uint64_t load_be64(const uint8_t *p) { return ((uint64_t)load_be32(p) << 32) | load_be32(p + 4); }

/* ---------------------------------------------------------------------------------------
 * SipHash-2-4 with 128-bit output (Aumasson & Bernstein), streaming.
 * ------------------------------------------------------------------------------------- */

typedef struct {
    uint64_t lo, hi;
} u128;

INLINE void u128_add(u128 *acc, u128 x) {
    uint64_t lo = acc->lo + x.lo;
    acc->hi += x.hi + (lo < x.lo);
    acc->lo = lo;
}

INLINE int u128_lt(u128 a, u128 b) { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo); }

typedef struct {
    uint64_t v0, v1, v2, v3;
    uint64_t tail;  /* the ntail (< 8) pending bytes, little-endian */
    uint64_t total; /* bytes fed so far */
    unsigned ntail;
} sip_t;

static uint64_t DIGEST_K0, DIGEST_K1; /* the 16 bytes "bdr-rdb-digest-1" */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                \
    do {                                                                                                        \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                               \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                                  \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                                  \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                               \
    } while (0)

INLINE void sip_init_key(sip_t *s, uint64_t k0, uint64_t k1) {
    s->v0 = 0x736f6d6570736575ULL ^ k0;
    s->v1 = (0x646f72616e646f6dULL ^ k1) ^ 0xee; /* 0xee: the 128-bit output variant */
    s->v2 = 0x6c7967656e657261ULL ^ k0;
    s->v3 = 0x7465646279746573ULL ^ k1;
    s->tail = 0;
    s->total = 0;
    s->ntail = 0;
}

INLINE void sip_init(sip_t *s) { sip_init_key(s, DIGEST_K0, DIGEST_K1); }

INLINE void sip_block(sip_t *s, uint64_t m) {
    uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    s->v0 = v0; s->v1 = v1; s->v2 = v2; s->v3 = v3;
}

/* The first n (< 8) bytes at p as a little-endian integer. */
INLINE uint64_t load_partial(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    switch (n) {
    case 7: v |= (uint64_t)p[6] << 48; /* fall through */
    case 6: v |= (uint64_t)p[5] << 40; /* fall through */
    case 5: v |= (uint64_t)p[4] << 32; /* fall through */
    case 4: return v | load_le32(p);
    case 3: v |= (uint64_t)p[2] << 16; /* fall through */
    case 2: v |= (uint64_t)p[1] << 8; /* fall through */
    case 1: v |= p[0]; /* fall through */
    default: return v;
    }
}

static void sip_update(sip_t *s, const uint8_t *p, size_t n) {
    s->total += n;
    unsigned t = s->ntail;
    if (t) {
        size_t need = 8 - t;
        if (n < need) {
            s->tail |= load_partial(p, n) << (8 * t);
            s->ntail = t + (unsigned)n;
            return;
        }
        sip_block(s, s->tail | (load_partial(p, need) << (8 * t)));
        p += need;
        n -= need;
        s->tail = 0;
        s->ntail = 0;
    }
    if (n >= 8) {
        uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
        while (n >= 8) {
            uint64_t m = load_le64(p);
            v3 ^= m;
            SIPROUND;
            SIPROUND;
            v0 ^= m;
            p += 8;
            n -= 8;
        }
        s->v0 = v0; s->v1 = v1; s->v2 = v2; s->v3 = v3;
    }
    if (n) {
        s->tail = load_partial(p, n);
        s->ntail = (unsigned)n;
    }
}

INLINE void sip_u64(sip_t *s, uint64_t x) {
    s->total += 8;
    if (LIKELY(s->ntail == 0)) {
        sip_block(s, x);
        return;
    }
    unsigned t = s->ntail; /* 1..7 */
    sip_block(s, s->tail | (x << (8 * t)));
    s->tail = x >> (64 - 8 * t);
}

INLINE void sip_u8(sip_t *s, uint8_t b) {
    s->total += 1;
    s->tail |= (uint64_t)b << (8 * s->ntail);
    if (++s->ntail == 8) {
        sip_block(s, s->tail);
        s->tail = 0;
        s->ntail = 0;
    }
}

INLINE void sip_str(sip_t *s, const uint8_t *p, size_t n) {
    sip_u64(s, (uint64_t)n);
    sip_update(s, p, n);
}

INLINE void sip_u128(sip_t *s, u128 x) {
    sip_u64(s, x.lo);
    sip_u64(s, x.hi);
}

static u128 sip_final(const sip_t *s) {
    uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
    uint64_t b = (s->total << 56) | s->tail;
    u128 out;
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xee;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    out.lo = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    out.hi = v0 ^ v1 ^ v2 ^ v3;
    return out;
}

/* ---------------------------------------------------------------------------------------
 * CRC-64/Jones as Redis computes it (reflected, polynomial 0xad93d23594c935a9, init 0,
 * no final xor), slicing by 16.
 * ------------------------------------------------------------------------------------- */

static uint64_t crc_table[16][256];

static void crc64_init(void) {
    const uint64_t poly = 0x95ac9329ac4bc9b5ULL; /* 0xad93d23594c935a9 bit-reversed */
    for (int n = 0; n < 256; n++) {
        uint64_t crc = (uint64_t)n;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ poly : crc >> 1;
        crc_table[0][n] = crc;
    }
    for (int n = 0; n < 256; n++)
        for (int k = 1; k < 16; k++)
            crc_table[k][n] = (crc_table[k - 1][n] >> 8) ^ crc_table[0][crc_table[k - 1][n] & 0xff];
}

static uint64_t crc64(uint64_t crc, const uint8_t *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 16) {
        crc ^= load_le64(p);
        uint64_t hi = load_le64(p + 8);
        crc = crc_table[15][crc & 0xff] ^ crc_table[14][(crc >> 8) & 0xff] ^ crc_table[13][(crc >> 16) & 0xff] ^
              crc_table[12][(crc >> 24) & 0xff] ^ crc_table[11][(crc >> 32) & 0xff] ^
              crc_table[10][(crc >> 40) & 0xff] ^ crc_table[9][(crc >> 48) & 0xff] ^ crc_table[8][crc >> 56] ^
              crc_table[7][hi & 0xff] ^ crc_table[6][(hi >> 8) & 0xff] ^ crc_table[5][(hi >> 16) & 0xff] ^
              crc_table[4][(hi >> 24) & 0xff] ^ crc_table[3][(hi >> 32) & 0xff] ^
              crc_table[2][(hi >> 40) & 0xff] ^ crc_table[1][(hi >> 48) & 0xff] ^ crc_table[0][hi >> 56];
        p += 16;
        n -= 16;
    }
    while (n >= 8) {
        crc ^= load_le64(p);
        crc = crc_table[7][crc & 0xff] ^ crc_table[6][(crc >> 8) & 0xff] ^ crc_table[5][(crc >> 16) & 0xff] ^
              crc_table[4][(crc >> 24) & 0xff] ^ crc_table[3][(crc >> 32) & 0xff] ^
              crc_table[2][(crc >> 40) & 0xff] ^ crc_table[1][(crc >> 48) & 0xff] ^ crc_table[0][crc >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

/* ---------------------------------------------------------------------------------------
 * RDB constants
 * ------------------------------------------------------------------------------------- */

enum {
    T_STRING = 0, T_LIST = 1, T_SET = 2, T_ZSET = 3, T_HASH = 4, T_ZSET_2 = 5, T_MODULE_PRE_GA = 6,
    T_MODULE_2 = 7, T_HASH_ZIPMAP = 9, T_LIST_ZIPLIST = 10, T_SET_INTSET = 11, T_ZSET_ZIPLIST = 12,
    T_HASH_ZIPLIST = 13, T_LIST_QUICKLIST = 14, T_STREAM_LISTPACKS = 15, T_HASH_LISTPACK = 16,
    T_ZSET_LISTPACK = 17, T_LIST_QUICKLIST_2 = 18, T_STREAM_LISTPACKS_2 = 19, T_SET_LISTPACK = 20,
    T_STREAM_LISTPACKS_3 = 21,
};

enum {
    OP_FUNCTION2 = 245, OP_FUNCTION_PRE_GA = 246, OP_MODULE_AUX = 247, OP_IDLE = 248, OP_FREQ = 249,
    OP_AUX = 250, OP_RESIZEDB = 251, OP_EXPIRETIME_MS = 252, OP_EXPIRETIME = 253, OP_SELECTDB = 254,
    OP_EOF = 255,
};

enum { MOD_EOF = 0, MOD_SINT = 1, MOD_UINT = 2, MOD_FLOAT = 3, MOD_DOUBLE = 4, MOD_STRING = 5 };

/* Type tags of the digest (see canonical.py). */
enum { TAG_STRING = 's', TAG_LIST = 'l', TAG_SET = 'S', TAG_ZSET = 'z', TAG_HASH = 'h', TAG_STREAM = 'x',
       TAG_MODULE = 'm' };

enum { ERR_CORRUPT = 1, ERR_UNSUPPORTED = 2, ERR_NOMEM = 3 };

#define MAX_RDB_VERSION 12

/* ---------------------------------------------------------------------------------------
 * Parser state
 * ------------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t cap;
} scratch_t;

typedef struct {
    const uint8_t *p;
    size_t n;
} str_t;

typedef struct {
    u128 h;
    uint64_t db;
    uint8_t *key;
    size_t keylen;
    char type[16];
} keyhash_t;

typedef struct {
    uint64_t db, keys, expires;
} dbcount_t;

typedef struct {
    uint8_t *k, *v;
    size_t kn, vn;
} aux_t;

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    int mapped;                         /* buf is an mmap of the file: see window_advance */
    size_t page, released, populated, next_window;
    uint64_t crc_released;              /* the CRC64 of the bytes before `released` */
    jmp_buf jb;
    int err;
    size_t err_off;
    char msg[400];

    int version;
    scratch_t s_key, s_val, s_num;
    u128 digest;
    uint64_t db;
    dbcount_t *dbs;
    size_t ndbs, capdbs, cur;
    uint64_t functions, module_aux;
    aux_t *aux;
    size_t naux, capaux;

    keyhash_t *heap; /* a max-heap of the k smallest per-key hashes */
    size_t nheap, k;
    int want_all;
    keyhash_t *all;
    size_t nall, capall;

    int checksum; /* 0: none in this version, 1: stored as zero (not computed), 2: verified */
    uint64_t crc_stored, crc_computed;
} ctx_t;

static NORETURN void fail(ctx_t *c, int kind, size_t off, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->err = kind;
    c->err_off = off;
    longjmp(c->jb, 1);
}

static void *grow(ctx_t *c, void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) fail(c, ERR_NOMEM, c->pos, "out of memory (%zu bytes)", n);
    return q;
}

static uint8_t *scratch(ctx_t *c, scratch_t *s, size_t n) {
    if (s->cap < n) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < n) cap = cap > SIZE_MAX / 2 ? n : cap * 2;
        s->p = grow(c, s->p, cap);
        s->cap = cap;
    }
    return s->p;
}

INLINE const uint8_t *take(ctx_t *c, size_t n, const char *what) {
    if (UNLIKELY(n > c->len - c->pos))
        fail(c, ERR_CORRUPT, c->pos, "truncated: %s needs %zu bytes, only %zu remain", what, n, c->len - c->pos);
    const uint8_t *p = c->buf + c->pos;
    c->pos += n;
    return p;
}

INLINE uint8_t take_u8(ctx_t *c, const char *what) { return *take(c, 1, what); }

/* rdbLoadLen: returns the length, or (with *enc set) the special encoding number. */
static uint64_t rd_len_enc(ctx_t *c, int *enc, const char *what) {
    size_t off = c->pos;
    uint8_t b = take_u8(c, what);
    *enc = 0;
    switch (b >> 6) {
    case 0:
        return b & 0x3f;
    case 1:
        return ((uint64_t)(b & 0x3f) << 8) | take_u8(c, what);
    case 2:
        if (b == 0x80) return load_be32(take(c, 4, what));
        if (b == 0x81) return load_be64(take(c, 8, what));
        fail(c, ERR_CORRUPT, off, "unknown length encoding 0x%02x in %s", b, what);
    default:
        *enc = 1;
        return b & 0x3f;
    }
}

INLINE uint64_t rd_len(ctx_t *c, const char *what) {
    if (LIKELY(c->pos < c->len && c->buf[c->pos] < 0x40)) return c->buf[c->pos++];
    size_t off = c->pos;
    int enc;
    uint64_t v = rd_len_enc(c, &enc, what);
    if (enc) fail(c, ERR_CORRUPT, off, "%s: expected a length, found an encoded-value marker 0x%02x", what,
                  c->buf[off]);
    return v;
}

static size_t fmt_i64(uint8_t *out, int64_t v) {
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = (uint8_t)tmp[--n];
    return len;
}

/* lzf_decompress with every bound checked; the number of bytes written, or 0 on bad input. */
static size_t lzf_dec(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len) {
    const uint8_t *ip = in, *in_end = in + in_len;
    size_t op = 0;
    while (ip < in_end) {
        unsigned ctrl = *ip++;
        if (ctrl < 32) {
            size_t run = ctrl + 1;
            if (run > out_len - op || run > (size_t)(in_end - ip)) return 0;
            memcpy(out + op, ip, run);
            op += run;
            ip += run;
        } else {
            size_t len = ctrl >> 5;
            size_t back = ((size_t)(ctrl & 0x1f) << 8) + 1;
            if (len == 7) {
                if (ip >= in_end) return 0;
                len += *ip++;
            }
            if (ip >= in_end) return 0;
            back += *ip++;
            len += 2;
            if (back > op || len > out_len - op) return 0;
            uint8_t *dst = out + op, *ref = dst - back;
            if (back >= len) {
                memcpy(dst, ref, len);
            } else {
                for (size_t i = 0; i < len; i++) dst[i] = ref[i];
            }
            op += len;
        }
    }
    return op;
}

/* rdbGenericLoadStringObject: raw bytes (pointing into the file), an integer as decimal
 * text, or LZF-decompressed bytes (in scratch s). */
static str_t rd_string(ctx_t *c, scratch_t *s, const char *what) {
    size_t off = c->pos;
    int enc;
    uint64_t n = rd_len_enc(c, &enc, what);
    str_t r;
    if (LIKELY(!enc)) {
        if (UNLIKELY(n > c->len - c->pos))
            fail(c, ERR_CORRUPT, c->pos, "truncated: %s needs %llu bytes, only %zu remain", what,
                 (unsigned long long)n, c->len - c->pos);
        r.p = take(c, (size_t)n, what);
        r.n = (size_t)n;
        return r;
    }
    int64_t v;
    switch (n) {
    case 0:
        v = (int8_t)take_u8(c, what);
        break;
    case 1:
        v = (int16_t)load_le16(take(c, 2, what));
        break;
    case 2:
        v = (int32_t)load_le32(take(c, 4, what));
        break;
    case 3: {
        uint64_t clen = rd_len(c, "LZF compressed length");
        uint64_t ulen = rd_len(c, "LZF uncompressed length");
        if (clen > c->len - c->pos)
            fail(c, ERR_CORRUPT, c->pos, "truncated: %s (LZF) needs %llu bytes, only %zu remain", what,
                 (unsigned long long)clen, c->len - c->pos);
        if (ulen == 0 || ulen / 96 > clen + 64)
            fail(c, ERR_CORRUPT, off, "%s: LZF length %llu is impossible for %llu compressed bytes", what,
                 (unsigned long long)ulen, (unsigned long long)clen);
        const uint8_t *src = take(c, (size_t)clen, what);
        uint8_t *dst = scratch(c, s, (size_t)ulen);
        if (lzf_dec(src, (size_t)clen, dst, (size_t)ulen) != ulen)
            fail(c, ERR_CORRUPT, off, "%s: LZF data does not decompress to its declared %llu bytes", what,
                 (unsigned long long)ulen);
        r.p = dst;
        r.n = (size_t)ulen;
        return r;
    }
    default:
        fail(c, ERR_CORRUPT, off, "%s: unknown string encoding %llu", what, (unsigned long long)n);
    }
    uint8_t *dst = scratch(c, s, 24);
    r.n = fmt_i64(dst, v);
    r.p = dst;
    return r;
}

/* ---------------------------------------------------------------------------------------
 * Listpacks and ziplists
 * ------------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *start, *p, *end; /* end: the terminating 0xFF */
    size_t off;                     /* file offset of the string holding the blob */
    const char *what;
} blob_t;

typedef struct {
    const uint8_t *s;
    size_t n;
    int64_t v;
    int is_int;
} ent_t;

static NORETURN void blob_fail(ctx_t *c, const blob_t *b, const uint8_t *at, const char *msg) {
    fail(c, ERR_CORRUPT, b->off, "%s: %s at byte %zu of the value", b->what, msg, (size_t)(at - b->start));
}

static void lp_open(ctx_t *c, blob_t *b, str_t s, size_t off, const char *what) {
    b->start = s.p;
    b->off = off;
    b->what = what;
    if (s.n < 7) fail(c, ERR_CORRUPT, off, "%s: %zu bytes are too few for a listpack", what, s.n);
    if (load_le32(s.p) != s.n)
        fail(c, ERR_CORRUPT, off, "%s: the listpack header says %u bytes, the value holds %zu", what,
             load_le32(s.p), s.n);
    if (s.p[s.n - 1] != 0xff) fail(c, ERR_CORRUPT, off, "%s: the listpack does not end with 0xFF", what);
    b->p = s.p + 6;
    b->end = s.p + s.n - 1;
}

INLINE int lp_next(ctx_t *c, blob_t *b, ent_t *e) {
    const uint8_t *p = b->p;
    if (p == b->end) return 0;
    size_t room = (size_t)(b->end - p), hdr = 0, len = 0, entlen = 0;
    uint8_t x = p[0];
    e->is_int = 1;
    e->v = 0;
    e->s = NULL;
    e->n = 0;
    if (x < 0x80) {
        e->v = x;
        entlen = 1;
    } else if ((x & 0xc0) == 0x80) {
        e->is_int = 0;
        hdr = 1;
        len = x & 0x3f;
    } else if ((x & 0xe0) == 0xc0) {
        if (room < 2) blob_fail(c, b, p, "truncated listpack entry");
        uint32_t u = ((uint32_t)(x & 0x1f) << 8) | p[1];
        e->v = u >= 4096 ? (int64_t)u - 8192 : (int64_t)u;
        entlen = 2;
    } else if ((x & 0xf0) == 0xe0) {
        if (room < 2) blob_fail(c, b, p, "truncated listpack entry");
        e->is_int = 0;
        hdr = 2;
        len = ((size_t)(x & 0x0f) << 8) | p[1];
    } else {
        switch (x) {
        case 0xf0:
            if (room < 5) blob_fail(c, b, p, "truncated listpack entry");
            e->is_int = 0;
            hdr = 5;
            len = load_le32(p + 1);
            break;
        case 0xf1:
            if (room < 3) blob_fail(c, b, p, "truncated listpack entry");
            e->v = (int16_t)load_le16(p + 1);
            entlen = 3;
            break;
        case 0xf2: {
            if (room < 4) blob_fail(c, b, p, "truncated listpack entry");
            uint32_t u = (uint32_t)p[1] | ((uint32_t)p[2] << 8) | ((uint32_t)p[3] << 16);
            e->v = u >= (1u << 23) ? (int64_t)u - (1 << 24) : (int64_t)u;
            entlen = 4;
            break;
        }
        case 0xf3:
            if (room < 5) blob_fail(c, b, p, "truncated listpack entry");
            e->v = (int32_t)load_le32(p + 1);
            entlen = 5;
            break;
        case 0xf4:
            if (room < 9) blob_fail(c, b, p, "truncated listpack entry");
            e->v = (int64_t)load_le64(p + 1);
            entlen = 9;
            break;
        case 0xff:
            blob_fail(c, b, p, "listpack end marker before the end");
        default:
            blob_fail(c, b, p, "unknown listpack entry encoding");
        }
    }
    if (!e->is_int) {
        if (len > room || hdr > room - len) blob_fail(c, b, p, "listpack string runs past the end");
        entlen = hdr + len;
        e->s = p + hdr;
        e->n = len;
    }
    /* lpEncodeBacklen's sizes (note the strict bounds of Redis's listpack.c) */
    size_t back = entlen <= 127 ? 1 : entlen < 16383 ? 2 : entlen < 2097151 ? 3 : entlen < 268435455 ? 4 : 5;
    if (entlen + back > room) blob_fail(c, b, p, "listpack entry runs past the end");
    b->p = p + entlen + back;
    return 1;
}

static void zl_open(ctx_t *c, blob_t *b, str_t s, size_t off, const char *what) {
    b->start = s.p;
    b->off = off;
    b->what = what;
    if (s.n < 11) fail(c, ERR_CORRUPT, off, "%s: %zu bytes are too few for a ziplist", what, s.n);
    if (load_le32(s.p) != s.n)
        fail(c, ERR_CORRUPT, off, "%s: the ziplist header says %u bytes, the value holds %zu", what,
             load_le32(s.p), s.n);
    if (s.p[s.n - 1] != 0xff) fail(c, ERR_CORRUPT, off, "%s: the ziplist does not end with 0xFF", what);
    b->p = s.p + 10;
    b->end = s.p + s.n - 1;
}

INLINE int zl_next(ctx_t *c, blob_t *b, ent_t *e) {
    const uint8_t *p = b->p;
    if (p == b->end) return 0;
    size_t room = (size_t)(b->end - p);
    if (p[0] == 0xff) blob_fail(c, b, p, "ziplist end marker before the end");
    size_t prev = p[0] < 254 ? 1 : 5;
    if (prev >= room) blob_fail(c, b, p, "truncated ziplist entry");
    const uint8_t *q = p + prev;
    room -= prev;
    uint8_t x = q[0];
    size_t hdr = 1, len = 0;
    e->is_int = 1;
    e->v = 0;
    e->s = NULL;
    e->n = 0;
    switch (x >> 6) {
    case 0:
        e->is_int = 0;
        len = x & 0x3f;
        break;
    case 1:
        if (room < 2) blob_fail(c, b, q, "truncated ziplist entry");
        e->is_int = 0;
        hdr = 2;
        len = ((size_t)(x & 0x3f) << 8) | q[1];
        break;
    case 2:
        if (room < 5) blob_fail(c, b, q, "truncated ziplist entry");
        e->is_int = 0;
        hdr = 5;
        len = load_be32(q + 1);
        break;
    default:
        if (x == 0xc0) len = 2;
        else if (x == 0xd0) len = 4;
        else if (x == 0xe0) len = 8;
        else if (x == 0xf0) len = 3;
        else if (x == 0xfe) len = 1;
        else if (x >= 0xf1 && x <= 0xfd) {
            len = 0;
            e->v = (x & 0x0f) - 1;
        } else
            blob_fail(c, b, q, "unknown ziplist entry encoding");
    }
    if (len > room || hdr > room - len) blob_fail(c, b, q, "ziplist entry runs past the end");
    const uint8_t *d = q + hdr;
    if (e->is_int) {
        switch (x) {
        case 0xc0: e->v = (int16_t)load_le16(d); break;
        case 0xd0: e->v = (int32_t)load_le32(d); break;
        case 0xe0: e->v = (int64_t)load_le64(d); break;
        case 0xf0: {
            uint32_t u = (uint32_t)d[0] | ((uint32_t)d[1] << 8) | ((uint32_t)d[2] << 16);
            e->v = u >= (1u << 23) ? (int64_t)u - (1 << 24) : (int64_t)u;
            break;
        }
        case 0xfe: e->v = (int8_t)d[0]; break;
        default: break;
        }
    } else {
        e->s = d;
        e->n = len;
    }
    b->p = d + len;
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * Canonical feeding
 * ------------------------------------------------------------------------------------- */

INLINE void feed_ent(sip_t *s, const ent_t *e) {
    if (e->is_int) {
        uint8_t buf[24];
        size_t n = fmt_i64(buf, e->v);
        sip_str(s, buf, n);
    } else {
        sip_str(s, e->s, e->n);
    }
}

/* A score as its binary64 bits; -0.0 as 0.0 (Redis 7 itself stores -0 as the integer 0 when it turns a
 * skiplist into a listpack) and every NaN as one NaN. */
INLINE uint64_t f64_bits(double d) {
    uint64_t u;
    if (isnan(d)) return 0x7ff8000000000000ULL;
    if (d == 0) return 0;
    memcpy(&u, &d, 8);
    return u;
}

/* Bytes for a message: printable ASCII as it is, anything else as \xNN; at most `limit` bytes. */
static void escaped(const uint8_t *s, size_t n, size_t limit, char *out, size_t size) {
    size_t j = 0;
    for (size_t i = 0; i < n && i < limit && j + 5 < size; i++) {
        uint8_t b = s[i];
        if (b >= 32 && b < 127 && b != '\\') out[j++] = (char)b;
        else j += (size_t)snprintf(out + j, size - j, "\\x%02x", b);
    }
    out[j] = 0;
}

static double parse_score(ctx_t *c, const uint8_t *s, size_t n, size_t off, const char *what) {
    char buf[320];
    if (n == 0 || n >= sizeof buf) fail(c, ERR_CORRUPT, off, "%s: a score of %zu characters", what, n);
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    double d = strtod(buf, &end);
    if (end != buf + n || isspace((unsigned char)buf[0])) {
        char shown[200];
        escaped(s, n, 40, shown, sizeof shown);
        fail(c, ERR_CORRUPT, off, "%s: score \"%s\" is not a number", what, shown);
    }
    return d;
}

INLINE double ent_score(ctx_t *c, const ent_t *e, size_t off, const char *what) {
    if (e->is_int) return (double)e->v;
    return parse_score(c, e->s, e->n, off, what);
}

/* One element of a set / hash / zset, combined order-independently. */
INLINE void set_member(u128 *acc, const uint8_t *p, size_t n) {
    sip_t e;
    sip_init(&e);
    sip_u8(&e, TAG_SET);
    sip_str(&e, p, n);
    u128_add(acc, sip_final(&e));
}

INLINE void set_member_ent(u128 *acc, const ent_t *x) {
    sip_t e;
    sip_init(&e);
    sip_u8(&e, TAG_SET);
    feed_ent(&e, x);
    u128_add(acc, sip_final(&e));
}

INLINE void pair_ent(u128 *acc, uint8_t tag, const ent_t *a, const ent_t *b) {
    sip_t e;
    sip_init(&e);
    sip_u8(&e, tag);
    feed_ent(&e, a);
    feed_ent(&e, b);
    u128_add(acc, sip_final(&e));
}

INLINE void zset_ent(ctx_t *c, u128 *acc, const ent_t *m, const ent_t *score, size_t off, const char *what) {
    sip_t e;
    sip_init(&e);
    sip_u8(&e, TAG_ZSET);
    feed_ent(&e, m);
    sip_u64(&e, f64_bits(ent_score(c, score, off, what)));
    u128_add(acc, sip_final(&e));
}

/* ---------------------------------------------------------------------------------------
 * Values: each feeds the key's hasher and returns its number of elements (an empty
 * collection is dropped by Redis when it loads the file, so it is skipped here too).
 * ------------------------------------------------------------------------------------- */

static uint64_t v_list_plain(ctx_t *c, sip_t *kh) {
    uint64_t n = rd_len(c, "list length");
    for (uint64_t i = 0; i < n; i++) {
        str_t s = rd_string(c, &c->s_val, "list element");
        sip_str(kh, s.p, s.n);
    }
    return n;
}

static uint64_t blob_list(ctx_t *c, sip_t *kh, int listpack, const char *what) {
    size_t off = c->pos;
    str_t s = rd_string(c, &c->s_val, what);
    blob_t b;
    ent_t e;
    uint64_t n = 0;
    if (listpack) {
        lp_open(c, &b, s, off, what);
        while (lp_next(c, &b, &e)) feed_ent(kh, &e), n++;
    } else {
        zl_open(c, &b, s, off, what);
        while (zl_next(c, &b, &e)) feed_ent(kh, &e), n++;
    }
    return n;
}

static uint64_t v_quicklist(ctx_t *c, sip_t *kh, int v2) {
    uint64_t nodes = rd_len(c, "quicklist node count"), n = 0;
    for (uint64_t i = 0; i < nodes; i++) {
        if (v2) {
            size_t off = c->pos;
            uint64_t container = rd_len(c, "quicklist node container");
            if (container == 1) { /* PLAIN: one large element */
                str_t s = rd_string(c, &c->s_val, "quicklist plain node");
                sip_str(kh, s.p, s.n);
                n++;
                continue;
            }
            if (container != 2)
                fail(c, ERR_CORRUPT, off, "quicklist node container %llu (neither 1 plain nor 2 packed)",
                     (unsigned long long)container);
            n += blob_list(c, kh, 1, "quicklist listpack node");
        } else {
            n += blob_list(c, kh, 0, "quicklist ziplist node");
        }
    }
    return n;
}

static void end_collection(sip_t *kh, uint64_t n, u128 acc) {
    sip_u64(kh, n);
    sip_u128(kh, acc);
}

static uint64_t v_set_plain(ctx_t *c, sip_t *kh) {
    uint64_t n = rd_len(c, "set size");
    u128 acc = {0, 0};
    for (uint64_t i = 0; i < n; i++) {
        str_t s = rd_string(c, &c->s_val, "set member");
        set_member(&acc, s.p, s.n);
    }
    end_collection(kh, n, acc);
    return n;
}

static uint64_t v_set_intset(ctx_t *c, sip_t *kh) {
    size_t off = c->pos;
    str_t s = rd_string(c, &c->s_val, "intset");
    if (s.n < 8) fail(c, ERR_CORRUPT, off, "intset: %zu bytes are too few", s.n);
    uint32_t enc = load_le32(s.p), len = load_le32(s.p + 4);
    if (enc != 2 && enc != 4 && enc != 8) fail(c, ERR_CORRUPT, off, "intset: unknown encoding %u", enc);
    if ((uint64_t)enc * len + 8 != s.n)
        fail(c, ERR_CORRUPT, off, "intset: %u members of %u bytes do not fill its %zu bytes", len, enc, s.n);
    u128 acc = {0, 0};
    for (uint32_t i = 0; i < len; i++) {
        const uint8_t *q = s.p + 8 + (size_t)i * enc;
        ent_t e;
        e.is_int = 1;
        e.v = enc == 2 ? (int16_t)load_le16(q) : enc == 4 ? (int32_t)load_le32(q) : (int64_t)load_le64(q);
        set_member_ent(&acc, &e);
    }
    end_collection(kh, len, acc);
    return len;
}

static uint64_t v_set_listpack(ctx_t *c, sip_t *kh) {
    size_t off = c->pos;
    str_t s = rd_string(c, &c->s_val, "set listpack");
    blob_t b;
    ent_t e;
    u128 acc = {0, 0};
    uint64_t n = 0;
    lp_open(c, &b, s, off, "set listpack");
    while (lp_next(c, &b, &e)) set_member_ent(&acc, &e), n++;
    end_collection(kh, n, acc);
    return n;
}

static double rd_double_v1(ctx_t *c) {
    size_t off = c->pos;
    uint8_t n = take_u8(c, "zset score");
    if (n == 253) return NAN;
    if (n == 254) return INFINITY;
    if (n == 255) return -INFINITY;
    const uint8_t *p = take(c, n, "zset score");
    return parse_score(c, p, n, off, "zset score");
}

static uint64_t v_zset_plain(ctx_t *c, sip_t *kh, int binary) {
    uint64_t n = rd_len(c, "zset size");
    u128 acc = {0, 0};
    for (uint64_t i = 0; i < n; i++) {
        str_t m = rd_string(c, &c->s_val, "zset member");
        sip_t e;
        sip_init(&e);
        sip_u8(&e, TAG_ZSET);
        sip_str(&e, m.p, m.n);
        double d;
        if (binary) {
            uint64_t bits = load_le64(take(c, 8, "zset score"));
            memcpy(&d, &bits, 8);
        } else {
            d = rd_double_v1(c);
        }
        sip_u64(&e, f64_bits(d));
        u128_add(&acc, sip_final(&e));
    }
    end_collection(kh, n, acc);
    return n;
}

static uint64_t v_pairs_blob(ctx_t *c, sip_t *kh, int listpack, int zset, const char *what) {
    size_t off = c->pos;
    str_t s = rd_string(c, &c->s_val, what);
    blob_t b;
    ent_t a, v;
    u128 acc = {0, 0};
    uint64_t n = 0;
    if (listpack) lp_open(c, &b, s, off, what);
    else zl_open(c, &b, s, off, what);
    for (;;) {
        int more = listpack ? lp_next(c, &b, &a) : zl_next(c, &b, &a);
        if (!more) break;
        more = listpack ? lp_next(c, &b, &v) : zl_next(c, &b, &v);
        if (!more) fail(c, ERR_CORRUPT, off, "%s: an odd number of entries", what);
        if (zset) zset_ent(c, &acc, &a, &v, off, what);
        else pair_ent(&acc, TAG_HASH, &a, &v);
        n++;
    }
    end_collection(kh, n, acc);
    return n;
}

static uint64_t v_hash_plain(ctx_t *c, sip_t *kh) {
    uint64_t n = rd_len(c, "hash size");
    u128 acc = {0, 0};
    for (uint64_t i = 0; i < n; i++) {
        sip_t e;
        sip_init(&e);
        sip_u8(&e, TAG_HASH);
        str_t f = rd_string(c, &c->s_val, "hash field");
        sip_str(&e, f.p, f.n);
        str_t v = rd_string(c, &c->s_val, "hash value");
        sip_str(&e, v.p, v.n);
        u128_add(&acc, sip_final(&e));
    }
    end_collection(kh, n, acc);
    return n;
}

static uint64_t v_hash_zipmap(ctx_t *c, sip_t *kh) {
    size_t off = c->pos;
    str_t s = rd_string(c, &c->s_val, "zipmap");
    const uint8_t *p = s.p, *end = s.p + s.n;
    u128 acc = {0, 0};
    uint64_t n = 0;
    if (s.n < 2 || end[-1] != 0xff) fail(c, ERR_CORRUPT, off, "zipmap: does not end with 0xFF");
    p++; /* zmlen */
    for (;;) {
        if (p >= end) fail(c, ERR_CORRUPT, off, "zipmap: runs past the end");
        if (*p == 0xff) break;
        const uint8_t *parts[2];
        size_t lens[2];
        for (int j = 0; j < 2; j++) {
            if (p >= end) fail(c, ERR_CORRUPT, off, "zipmap: runs past the end");
            size_t len = *p;
            if (len == 254) {
                if (end - p < 5) fail(c, ERR_CORRUPT, off, "zipmap: runs past the end");
                len = load_le32(p + 1);
                p += 5;
            } else if (len == 255) {
                fail(c, ERR_CORRUPT, off, "zipmap: end marker inside an entry");
            } else {
                p++;
            }
            size_t free_bytes = 0;
            if (j == 1) {
                if (p >= end) fail(c, ERR_CORRUPT, off, "zipmap: runs past the end");
                free_bytes = *p++;
            }
            if ((size_t)(end - p) < len + free_bytes) fail(c, ERR_CORRUPT, off, "zipmap: runs past the end");
            parts[j] = p;
            lens[j] = len;
            p += len + free_bytes;
        }
        sip_t e;
        sip_init(&e);
        sip_u8(&e, TAG_HASH);
        sip_str(&e, parts[0], lens[0]);
        sip_str(&e, parts[1], lens[1]);
        u128_add(&acc, sip_final(&e));
        n++;
    }
    end_collection(kh, n, acc);
    return n;
}

/* ---- streams ---- */

typedef struct {
    uint64_t ms, seq;
} sid_t;

INLINE int sid_cmp(sid_t a, sid_t b) {
    if (a.ms != b.ms) return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq) return a.seq < b.seq ? -1 : 1;
    return 0;
}

static int64_t lp_int(ctx_t *c, blob_t *b, const char *what) {
    ent_t e;
    if (!lp_next(c, b, &e)) blob_fail(c, b, b->p, what);
    if (!e.is_int) blob_fail(c, b, b->p, "a stream listpack field that should be an integer is a string");
    return e.v;
}

/* streamEstimateDistanceFromFirstEverEntry as Redis 7.0 computes a group's entries-read
 * when it loads a stream written before 7.0 (RDB_TYPE_STREAM_LISTPACKS). */
static uint64_t estimate_entries_read(uint64_t entries_added, uint64_t length, sid_t last, sid_t first,
                                      sid_t maxdel, sid_t id) {
    const uint64_t invalid = UINT64_MAX; /* SCG_INVALID_ENTRIES_READ (-1) */
    if (!entries_added) return 0;
    if (!length && sid_cmp(id, last) < 1) return entries_added;
    int cmp_last = sid_cmp(id, last);
    if (cmp_last == 0) return entries_added;
    if (cmp_last > 0) return invalid;
    int cmp_first = sid_cmp(id, first);
    int cmp_xdel_first = sid_cmp(maxdel, first);
    if ((maxdel.ms == 0 && maxdel.seq == 0) || cmp_xdel_first < 0) {
        if (cmp_first < 0) return entries_added - length;
        if (cmp_first == 0) return entries_added - length + 1;
    }
    return invalid;
}

static uint64_t v_stream(ctx_t *c, sip_t *kh, int type) {
    uint64_t nodes = rd_len(c, "stream listpack count");
    int have_first = 0;
    sid_t first_entry = {UINT64_MAX, UINT64_MAX};
    ent_t fields[64];
    ent_t *mf = fields; /* master fields; grown on the heap when there are more than 64 */
    size_t mf_cap = 64;
    ent_t *heap_fields = NULL;
    for (uint64_t i = 0; i < nodes; i++) {
        size_t off = c->pos;
        str_t key = rd_string(c, &c->s_val, "stream node key");
        if (key.n != 16) fail(c, ERR_CORRUPT, off, "stream node key of %zu bytes (a stream ID has 16)", key.n);
        sid_t master = {load_be64(key.p), load_be64(key.p + 8)};
        off = c->pos;
        str_t s = rd_string(c, &c->s_val, "stream listpack");
        blob_t b;
        lp_open(c, &b, s, off, "stream listpack");
        lp_int(c, &b, "stream listpack without a master entry"); /* count */
        lp_int(c, &b, "stream listpack without a master entry"); /* deleted */
        int64_t nmf = lp_int(c, &b, "stream listpack without a master entry");
        if (nmf < 0 || (uint64_t)nmf > s.n) blob_fail(c, &b, b.p, "impossible number of master fields");
        if ((size_t)nmf > mf_cap) {
            heap_fields = grow(c, heap_fields, (size_t)nmf * sizeof(ent_t));
            mf = heap_fields;
            mf_cap = (size_t)nmf;
        }
        for (int64_t j = 0; j < nmf; j++)
            if (!lp_next(c, &b, &mf[j])) blob_fail(c, &b, b.p, "stream master entry cut short");
        lp_int(c, &b, "stream master entry without its terminator");
        ent_t e, v;
        for (;;) {
            if (!lp_next(c, &b, &e)) break;
            if (!e.is_int) blob_fail(c, &b, b.p, "stream entry flags are not an integer");
            int64_t flags = e.v;
            int64_t ms_diff = lp_int(c, &b, "stream entry cut short");
            int64_t seq_diff = lp_int(c, &b, "stream entry cut short");
            sid_t id = {master.ms + (uint64_t)ms_diff, master.seq + (uint64_t)seq_diff};
            int deleted = (flags & 1) != 0, same = (flags & 2) != 0;
            int64_t nf = same ? nmf : lp_int(c, &b, "stream entry cut short");
            if (nf < 0) blob_fail(c, &b, b.p, "negative number of stream entry fields");
            if (!deleted) {
                if (!have_first) {
                    first_entry = id;
                    have_first = 1;
                }
                sip_u8(kh, 'e');
                sip_u64(kh, id.ms);
                sip_u64(kh, id.seq);
                sip_u64(kh, (uint64_t)nf);
            }
            for (int64_t j = 0; j < nf; j++) {
                if (same) {
                    if (!lp_next(c, &b, &v)) blob_fail(c, &b, b.p, "stream entry cut short");
                    if (!deleted) {
                        feed_ent(kh, &mf[j]);
                        feed_ent(kh, &v);
                    }
                } else {
                    if (!lp_next(c, &b, &e) || !lp_next(c, &b, &v)) blob_fail(c, &b, b.p, "stream entry cut short");
                    if (!deleted) {
                        feed_ent(kh, &e);
                        feed_ent(kh, &v);
                    }
                }
            }
            lp_int(c, &b, "stream entry without its lp-count");
        }
    }
    free(heap_fields);
    uint64_t length = rd_len(c, "stream length");
    sid_t last, first, maxdel;
    last.ms = rd_len(c, "stream last ID");
    last.seq = rd_len(c, "stream last ID");
    uint64_t added;
    if (type >= T_STREAM_LISTPACKS_2) {
        first.ms = rd_len(c, "stream first ID");
        first.seq = rd_len(c, "stream first ID");
        maxdel.ms = rd_len(c, "stream max deleted ID");
        maxdel.seq = rd_len(c, "stream max deleted ID");
        added = rd_len(c, "stream entries added");
    } else { /* what Redis 7 derives when it loads a stream of Redis 5/6 */
        first = first_entry;
        maxdel.ms = maxdel.seq = 0;
        added = length;
    }
    uint64_t ngroups = rd_len(c, "stream group count");
    sip_u8(kh, 'm');
    sip_u64(kh, length);
    sip_u64(kh, last.ms);
    sip_u64(kh, last.seq);
    sip_u64(kh, first.ms);
    sip_u64(kh, first.seq);
    sip_u64(kh, maxdel.ms);
    sip_u64(kh, maxdel.seq);
    sip_u64(kh, added);
    sip_u64(kh, ngroups);
    for (uint64_t g = 0; g < ngroups; g++) {
        str_t name = rd_string(c, &c->s_val, "stream group name");
        sip_u8(kh, 'g');
        sip_str(kh, name.p, name.n);
        sid_t glast;
        glast.ms = rd_len(c, "stream group last ID");
        glast.seq = rd_len(c, "stream group last ID");
        uint64_t read = type >= T_STREAM_LISTPACKS_2 ? rd_len(c, "stream group entries read")
                                                     : estimate_entries_read(added, length, last, first, maxdel, glast);
        sip_u64(kh, glast.ms);
        sip_u64(kh, glast.seq);
        sip_u64(kh, read);
        uint64_t npel = rd_len(c, "stream PEL size");
        sip_u64(kh, npel);
        for (uint64_t j = 0; j < npel; j++) {
            const uint8_t *raw = take(c, 16, "stream PEL entry ID");
            sip_u64(kh, load_be64(raw));
            sip_u64(kh, load_be64(raw + 8));
            sip_u64(kh, load_le64(take(c, 8, "stream PEL delivery time")));
            sip_u64(kh, rd_len(c, "stream PEL delivery count"));
        }
        uint64_t ncons = rd_len(c, "stream consumer count");
        sip_u64(kh, ncons);
        for (uint64_t j = 0; j < ncons; j++) {
            str_t cname = rd_string(c, &c->s_val, "stream consumer name");
            sip_u8(kh, 'c');
            sip_str(kh, cname.p, cname.n);
            uint64_t seen = load_le64(take(c, 8, "stream consumer seen time"));
            uint64_t active = type >= T_STREAM_LISTPACKS_3 ? load_le64(take(c, 8, "stream consumer active time"))
                                                           : seen;
            sip_u64(kh, seen);
            sip_u64(kh, active);
            uint64_t np = rd_len(c, "stream consumer PEL size");
            sip_u64(kh, np);
            for (uint64_t k = 0; k < np; k++) {
                const uint8_t *raw = take(c, 16, "stream consumer PEL ID");
                sip_u64(kh, load_be64(raw));
                sip_u64(kh, load_be64(raw + 8));
            }
        }
    }
    return 1; /* an empty stream is still a key */
}

/* ---- modules ---- */

static void module_name(uint64_t id, char *out) {
    static const char cset[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    id >>= 10;
    for (int j = 8; j >= 0; j--) {
        out[j] = cset[id & 63];
        id >>= 6;
    }
    out[9] = 0;
}

/* The opcode stream of a module value or module aux (rdbLoadCheckModuleValue), up to EOF. */
static void module_opcodes(ctx_t *c, sip_t *h) {
    for (;;) {
        size_t off = c->pos;
        uint64_t op = rd_len(c, "module opcode");
        sip_u8(h, (uint8_t)op);
        switch (op) {
        case MOD_EOF:
            return;
        case MOD_SINT:
        case MOD_UINT:
            sip_u64(h, rd_len(c, "module integer"));
            break;
        case MOD_FLOAT:
            sip_update(h, take(c, 4, "module float"), 4);
            break;
        case MOD_DOUBLE:
            sip_update(h, take(c, 8, "module double"), 8);
            break;
        case MOD_STRING: {
            str_t s = rd_string(c, &c->s_val, "module string");
            sip_str(h, s.p, s.n);
            break;
        }
        default:
            fail(c, ERR_CORRUPT, off, "unknown module opcode %llu", (unsigned long long)op);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Keys, counts, the sample
 * ------------------------------------------------------------------------------------- */

static dbcount_t *db_counts(ctx_t *c) {
    if (c->cur < c->ndbs && c->dbs[c->cur].db == c->db) return &c->dbs[c->cur];
    for (size_t i = 0; i < c->ndbs; i++)
        if (c->dbs[i].db == c->db) return &c->dbs[c->cur = i];
    if (c->ndbs == c->capdbs) {
        c->capdbs = c->capdbs ? 2 * c->capdbs : 16;
        c->dbs = grow(c, c->dbs, c->capdbs * sizeof(dbcount_t));
    }
    c->dbs[c->ndbs].db = c->db;
    c->dbs[c->ndbs].keys = c->dbs[c->ndbs].expires = 0;
    c->cur = c->ndbs;
    return &c->dbs[c->ndbs++];
}

static void keyhash_set(ctx_t *c, keyhash_t *k, u128 h, str_t key, const char *type) {
    k->h = h;
    k->db = c->db;
    k->key = grow(c, k->key, key.n);
    memcpy(k->key, key.p, key.n);
    k->keylen = key.n;
    snprintf(k->type, sizeof k->type, "%s", type);
}

static void heap_down(keyhash_t *heap, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && u128_lt(heap[m].h, heap[l].h)) m = l;
        if (r < n && u128_lt(heap[m].h, heap[r].h)) m = r;
        if (m == i) return;
        keyhash_t t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

static void sample_offer(ctx_t *c, u128 h, str_t key, const char *type) {
    if (c->k == 0) return;
    if (c->nheap < c->k) {
        keyhash_t *k = &c->heap[c->nheap];
        k->key = NULL;
        keyhash_set(c, k, h, key, type);
        size_t i = c->nheap++;
        while (i > 0) {
            size_t parent = (i - 1) / 2;
            if (!u128_lt(c->heap[parent].h, c->heap[i].h)) break;
            keyhash_t t = c->heap[i];
            c->heap[i] = c->heap[parent];
            c->heap[parent] = t;
            i = parent;
        }
    } else if (u128_lt(h, c->heap[0].h)) {
        keyhash_set(c, &c->heap[0], h, key, type);
        heap_down(c->heap, c->nheap, 0);
    }
}

static const char *type_name(int type, char *modname) {
    switch (type) {
    case T_STRING: return "string";
    case T_LIST: case T_LIST_ZIPLIST: case T_LIST_QUICKLIST: case T_LIST_QUICKLIST_2: return "list";
    case T_SET: case T_SET_INTSET: case T_SET_LISTPACK: return "set";
    case T_ZSET: case T_ZSET_2: case T_ZSET_ZIPLIST: case T_ZSET_LISTPACK: return "zset";
    case T_HASH: case T_HASH_ZIPMAP: case T_HASH_ZIPLIST: case T_HASH_LISTPACK: return "hash";
    case T_STREAM_LISTPACKS: case T_STREAM_LISTPACKS_2: case T_STREAM_LISTPACKS_3: return "stream";
    case T_MODULE_2: return modname;
    default: return "?";
    }
}

static void read_key(ctx_t *c, int type, size_t type_off, int has_expire, int64_t expire_ms) {
    uint8_t tag;
    switch (type) {
    case T_STRING: tag = TAG_STRING; break;
    case T_LIST: case T_LIST_ZIPLIST: case T_LIST_QUICKLIST: case T_LIST_QUICKLIST_2: tag = TAG_LIST; break;
    case T_SET: case T_SET_INTSET: case T_SET_LISTPACK: tag = TAG_SET; break;
    case T_ZSET: case T_ZSET_2: case T_ZSET_ZIPLIST: case T_ZSET_LISTPACK: tag = TAG_ZSET; break;
    case T_HASH: case T_HASH_ZIPMAP: case T_HASH_ZIPLIST: case T_HASH_LISTPACK: tag = TAG_HASH; break;
    case T_STREAM_LISTPACKS: case T_STREAM_LISTPACKS_2: case T_STREAM_LISTPACKS_3: tag = TAG_STREAM; break;
    case T_MODULE_2: tag = TAG_MODULE; break;
    case T_MODULE_PRE_GA:
        fail(c, ERR_UNSUPPORTED, type_off,
             "a module value of the pre-GA format (RDB type 6, Redis 4.0 release candidates) cannot be "
             "skipped without its module");
    default:
        fail(c, ERR_UNSUPPORTED, type_off, "unknown value type or opcode %d (0x%02x)", type, type);
    }
    str_t key = rd_string(c, &c->s_key, "key");
    sip_t kh;
    sip_init(&kh);
    sip_u64(&kh, c->db);
    sip_str(&kh, key.p, key.n);
    if (has_expire) {
        sip_u8(&kh, 1);
        sip_u64(&kh, (uint64_t)expire_ms);
    } else {
        sip_u8(&kh, 0);
    }
    sip_u8(&kh, tag);
    uint64_t n;
    char modname[10] = "";
    switch (type) {
    case T_STRING: {
        str_t s = rd_string(c, &c->s_val, "string value");
        sip_str(&kh, s.p, s.n);
        n = 1;
        break;
    }
    case T_LIST: n = v_list_plain(c, &kh); break;
    case T_LIST_ZIPLIST: n = blob_list(c, &kh, 0, "list ziplist"); break;
    case T_LIST_QUICKLIST: n = v_quicklist(c, &kh, 0); break;
    case T_LIST_QUICKLIST_2: n = v_quicklist(c, &kh, 1); break;
    case T_SET: n = v_set_plain(c, &kh); break;
    case T_SET_INTSET: n = v_set_intset(c, &kh); break;
    case T_SET_LISTPACK: n = v_set_listpack(c, &kh); break;
    case T_ZSET: n = v_zset_plain(c, &kh, 0); break;
    case T_ZSET_2: n = v_zset_plain(c, &kh, 1); break;
    case T_ZSET_ZIPLIST: n = v_pairs_blob(c, &kh, 0, 1, "zset ziplist"); break;
    case T_ZSET_LISTPACK: n = v_pairs_blob(c, &kh, 1, 1, "zset listpack"); break;
    case T_HASH: n = v_hash_plain(c, &kh); break;
    case T_HASH_ZIPMAP: n = v_hash_zipmap(c, &kh); break;
    case T_HASH_ZIPLIST: n = v_pairs_blob(c, &kh, 0, 0, "hash ziplist"); break;
    case T_HASH_LISTPACK: n = v_pairs_blob(c, &kh, 1, 0, "hash listpack"); break;
    case T_MODULE_2: {
        uint64_t id = rd_len(c, "module id");
        module_name(id, modname);
        sip_u64(&kh, id);
        module_opcodes(c, &kh);
        n = 1;
        break;
    }
    default: n = v_stream(c, &kh, type); break;
    }
    if (n == 0) return; /* Redis drops an empty collection when it loads the file */
    u128 h = sip_final(&kh);
    u128_add(&c->digest, h);
    dbcount_t *d = db_counts(c);
    d->keys++;
    if (has_expire) d->expires++;
    const char *tname = type_name(type, modname);
    sample_offer(c, h, key, tname);
    if (c->want_all) {
        if (c->nall == c->capall) {
            c->capall = c->capall ? 2 * c->capall : 256;
            c->all = grow(c, c->all, c->capall * sizeof(keyhash_t));
        }
        keyhash_t *k = &c->all[c->nall];
        k->key = NULL;
        keyhash_set(c, k, h, key, tname);
        c->nall++;
    }
}

static void add_aux(ctx_t *c, str_t k, str_t v) {
    if (c->naux == c->capaux) {
        c->capaux = c->capaux ? 2 * c->capaux : 16;
        c->aux = grow(c, c->aux, c->capaux * sizeof(aux_t));
    }
    aux_t *a = &c->aux[c->naux];
    a->k = a->v = NULL;
    c->naux++;
    a->k = grow(c, NULL, k.n);
    memcpy(a->k, k.p, k.n);
    a->kn = k.n;
    a->v = grow(c, NULL, v.n);
    memcpy(a->v, v.p, v.n);
    a->vn = v.n;
}

/* When parsing failed: does the end of the file look like EOF + CRC, and does the CRC
 * match? A hint for the message: -1 no CRC to check, 0 mismatch, 1 match. */
static int crc_hint(const ctx_t *c) {
    if (c->version < 5 || c->len < 18 || c->buf[c->len - 9] != OP_EOF) return -1;
    uint64_t stored = load_le64(c->buf + c->len - 8);
    if (stored == 0) return -1;
    return crc64(0, c->buf, c->len - 8) == stored;
}

/* A mapped file is parsed in one pass with about three windows of it resident (48 MiB), whatever its size: the
 * pages more than a window behind the cursor are CRC'd (the file's CRC64 as it goes, not a second pass at the end)
 * and handed back (MADV_DONTNEED on a read-only private file mapping drops them from this process only; a later
 * read, an error's context or crc_hint, faults them in again from the file, unchanged), and the next two windows
 * are faulted in with one call (MADV_POPULATE_READ, where the kernel has it) instead of one fault per page. A
 * single value longer than that is resident while it is read. */
#define WINDOW ((size_t)16 << 20)

static void window_advance(ctx_t *c) {
    size_t behind = c->pos > WINDOW ? (c->pos - WINDOW) & ~(c->page - 1) : 0;
    if (behind > c->released) {
        c->crc_released = crc64(c->crc_released, c->buf + c->released, behind - c->released);
        madvise((void *)(c->buf + c->released), behind - c->released, MADV_DONTNEED);
        c->released = behind;
    }
#ifdef MADV_POPULATE_READ
    size_t end = c->pos + 2 * WINDOW < c->len ? c->pos + 2 * WINDOW : c->len;
    size_t from = (c->populated > c->pos ? c->populated : c->pos) & ~(c->page - 1);
    if (end > from) madvise((void *)(c->buf + from), end - from, MADV_POPULATE_READ); /* a hint: errors ignored */
    if (end > c->populated) c->populated = end;
#endif
    c->next_window = c->pos + WINDOW / 4;
}

static void parse(ctx_t *c) {
    if (c->len == 0) fail(c, ERR_CORRUPT, 0, "truncated: the file is empty");
    if (c->len < 9 || memcmp(c->buf, "REDIS", 5) != 0) {
        char shown[64];
        escaped(c->buf, c->len, 9, shown, sizeof shown);
        fail(c, ERR_CORRUPT, 0, "not an RDB file: it starts with \"%s\", not \"REDIS\" and a 4-digit version", shown);
    }
    int version = 0;
    for (int i = 5; i < 9; i++) {
        if (c->buf[i] < '0' || c->buf[i] > '9') fail(c, ERR_CORRUPT, 5, "not an RDB file: the version is not 4 digits");
        version = version * 10 + (c->buf[i] - '0');
    }
    c->version = version;
    if (version < 1 || version > MAX_RDB_VERSION)
        fail(c, ERR_UNSUPPORTED, 5, "RDB version %d (this build reads versions 1 to %d)", version, MAX_RDB_VERSION);
    c->pos = 9;
    int has_expire = 0;
    int64_t expire_ms = 0;
    for (;;) {
        if (UNLIKELY(c->mapped && c->pos >= c->next_window)) window_advance(c);
        size_t off = c->pos;
        uint8_t type = take_u8(c, "the next type or opcode (the file ends before its EOF marker)");
        switch (type) {
        case OP_EXPIRETIME_MS:
            expire_ms = (int64_t)load_le64(take(c, 8, "expire time"));
            has_expire = 1;
            continue;
        case OP_EXPIRETIME:
            expire_ms = (int64_t)(int32_t)load_le32(take(c, 4, "expire time")) * 1000;
            has_expire = 1;
            continue;
        case OP_IDLE:
            rd_len(c, "LRU idle time");
            continue;
        case OP_FREQ:
            take_u8(c, "LFU frequency");
            continue;
        case OP_SELECTDB:
            c->db = rd_len(c, "database number");
            continue;
        case OP_RESIZEDB:
            rd_len(c, "database size hint");
            rd_len(c, "expires size hint");
            continue;
        case OP_AUX: {
            str_t k = rd_string(c, &c->s_key, "aux field name");
            str_t v = rd_string(c, &c->s_val, "aux field value");
            add_aux(c, k, v);
            continue;
        }
        case OP_MODULE_AUX: {
            uint64_t id = rd_len(c, "module aux id");
            size_t woff = c->pos;
            uint64_t when_op = rd_len(c, "module aux when-opcode");
            uint64_t when = rd_len(c, "module aux when");
            if (when_op != MOD_UINT)
                fail(c, ERR_CORRUPT, woff, "module aux: when-opcode %llu (expected 2)", (unsigned long long)when_op);
            sip_t h;
            sip_init(&h);
            sip_u8(&h, 'A');
            sip_u64(&h, id);
            sip_u64(&h, when);
            module_opcodes(c, &h);
            u128_add(&c->digest, sip_final(&h));
            c->module_aux++;
            continue;
        }
        case OP_FUNCTION_PRE_GA:
            fail(c, ERR_UNSUPPORTED, off,
                 "a function library in the pre-release format of the Redis 7.0 release candidates (opcode 246)");
        case OP_FUNCTION2: {
            str_t code = rd_string(c, &c->s_val, "function library code");
            sip_t h;
            sip_init(&h);
            sip_u8(&h, 'F');
            sip_str(&h, code.p, code.n);
            u128_add(&c->digest, sip_final(&h));
            c->functions++;
            continue;
        }
        case OP_EOF: {
            size_t end = c->pos;
            if (version >= 5) {
                c->crc_stored = load_le64(take(c, 8, "the CRC64 after the EOF marker"));
                if (c->crc_stored == 0) {
                    c->checksum = 1;
                } else {
                    c->crc_computed = crc64(c->crc_released, c->buf + c->released, end - c->released);
                    if (c->crc_computed != c->crc_stored)
                        fail(c, ERR_CORRUPT, end,
                             "CRC64 mismatch: the file stores %016llx, its bytes give %016llx (a byte changed "
                             "after Redis wrote it)",
                             (unsigned long long)c->crc_stored, (unsigned long long)c->crc_computed);
                    c->checksum = 2;
                }
            }
            return;
        }
        default:
            read_key(c, type, off, has_expire, expire_ms);
            has_expire = 0;
            continue;
        }
    }
}

static void ctx_free(ctx_t *c) {
    free(c->s_key.p);
    free(c->s_val.p);
    free(c->s_num.p);
    free(c->dbs);
    for (size_t i = 0; i < c->naux; i++) {
        free(c->aux[i].k);
        free(c->aux[i].v);
    }
    free(c->aux);
    for (size_t i = 0; i < c->nheap; i++) free(c->heap[i].key);
    free(c->heap);
    for (size_t i = 0; i < c->nall; i++) free(c->all[i].key);
    free(c->all);
}

/* Runs without the GIL. 0 on success. */
static int run(ctx_t *c) {
    if (setjmp(c->jb)) {
        if (c->err == ERR_CORRUPT || c->err == ERR_UNSUPPORTED) {
            int hint = crc_hint(c);
            size_t n = strlen(c->msg);
            if (hint == 0 && strncmp(c->msg, "CRC64", 5) != 0)
                snprintf(c->msg + n, sizeof c->msg - n, "; the file's CRC64 does not match either: it is corrupt");
            else if (hint == 1)
                snprintf(c->msg + n, sizeof c->msg - n,
                         "; the file's CRC64 matches, so Redis wrote it like this (a newer Redis?)");
        }
        return -1;
    }
    parse(c);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Python interface
 * ------------------------------------------------------------------------------------- */

static PyObject *RdbError;

static PyObject *hash_bytes(u128 h) {
    uint8_t out[16];
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(h.lo >> (8 * i));
        out[8 + i] = (uint8_t)(h.hi >> (8 * i));
    }
    return PyBytes_FromStringAndSize((const char *)out, 16);
}

static PyObject *keyhash_tuple(const keyhash_t *k) {
    return Py_BuildValue("(Ky#Ns)", (unsigned long long)k->db, (const char *)k->key, (Py_ssize_t)k->keylen,
                         hash_bytes(k->h), k->type);
}

static int cmp_keyhash(const void *a, const void *b) {
    const keyhash_t *x = a, *y = b;
    if (u128_lt(x->h, y->h)) return -1;
    if (u128_lt(y->h, x->h)) return 1;
    return 0;
}

static PyObject *result(ctx_t *c) {
    PyObject *dbs = PyList_New(0), *aux = PyList_New(0), *sample = PyList_New(0), *all = NULL, *out = NULL;
    if (!dbs || !aux || !sample) goto done;
    for (size_t i = 0; i < c->ndbs; i++) {
        PyObject *t = Py_BuildValue("(KKK)", (unsigned long long)c->dbs[i].db, (unsigned long long)c->dbs[i].keys,
                                    (unsigned long long)c->dbs[i].expires);
        if (!t || PyList_Append(dbs, t) < 0) { Py_XDECREF(t); goto done; }
        Py_DECREF(t);
    }
    for (size_t i = 0; i < c->naux; i++) {
        PyObject *t = Py_BuildValue("(y#y#)", (const char *)c->aux[i].k, (Py_ssize_t)c->aux[i].kn,
                                    (const char *)c->aux[i].v, (Py_ssize_t)c->aux[i].vn);
        if (!t || PyList_Append(aux, t) < 0) { Py_XDECREF(t); goto done; }
        Py_DECREF(t);
    }
    if (c->nheap) qsort(c->heap, c->nheap, sizeof(keyhash_t), cmp_keyhash);
    for (size_t i = 0; i < c->nheap; i++) {
        PyObject *t = keyhash_tuple(&c->heap[i]);
        if (!t || PyList_Append(sample, t) < 0) { Py_XDECREF(t); goto done; }
        Py_DECREF(t);
    }
    if (c->want_all) {
        all = PyList_New((Py_ssize_t)c->nall);
        if (!all) goto done;
        for (size_t i = 0; i < c->nall; i++) {
            PyObject *t = keyhash_tuple(&c->all[i]);
            if (!t) goto done;
            PyList_SET_ITEM(all, (Py_ssize_t)i, t);
        }
    } else {
        all = Py_None;
        Py_INCREF(all);
    }
    static const char *checksums[] = {"none", "absent", "verified"};
    out = Py_BuildValue("{s:N,s:i,s:O,s:K,s:K,s:O,s:O,s:O,s:s,s:n}", "value", hash_bytes(c->digest), "rdb_version",
                        c->version, "dbs", dbs, "functions", (unsigned long long)c->functions, "module_aux",
                        (unsigned long long)c->module_aux, "aux", aux, "sample", sample, "keys", all, "checksum",
                        checksums[c->checksum], "bytes", (Py_ssize_t)c->len);
done:
    Py_XDECREF(dbs);
    Py_XDECREF(aux);
    Py_XDECREF(sample);
    Py_XDECREF(all);
    return out;
}

static PyObject *digest_memory(const uint8_t *buf, size_t len, Py_ssize_t k, int want_all, int mapped) {
    ctx_t *c = calloc(1, sizeof(ctx_t));
    if (!c) return PyErr_NoMemory();
    c->buf = buf;
    c->len = len;
    c->mapped = mapped;
    c->page = (size_t)sysconf(_SC_PAGESIZE);
    c->k = k > 0 ? (size_t)k : 0;
    c->want_all = want_all;
    if (c->k) {
        c->heap = calloc(c->k, sizeof(keyhash_t));
        if (!c->heap) {
            free(c);
            return PyErr_NoMemory();
        }
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = run(c);
    Py_END_ALLOW_THREADS
    PyObject *out;
    if (rc == 0) {
        out = result(c);
    } else if (c->err == ERR_NOMEM) {
        out = PyErr_NoMemory();
    } else {
        PyObject *args = Py_BuildValue("(Nns)", PyUnicode_DecodeLatin1(c->msg, (Py_ssize_t)strlen(c->msg), NULL),
                                       (Py_ssize_t)c->err_off,
                                       c->err == ERR_UNSUPPORTED ? "unsupported" : "corrupt");
        if (args) {
            PyErr_SetObject(RdbError, args);
            Py_DECREF(args);
        }
        out = NULL;
    }
    ctx_free(c);
    free(c);
    return out;
}

static PyObject *py_digest_file(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"path", "sample", "all_keys", NULL};
    PyObject *pathobj = NULL;
    Py_ssize_t k = 64;
    int want_all = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|np", kwlist, PyUnicode_FSConverter, &pathobj, &k, &want_all))
        return NULL;
    const char *path = PyBytes_AS_STRING(pathobj);
    int fd;
    Py_BEGIN_ALLOW_THREADS
    fd = open(path, O_RDONLY | O_CLOEXEC);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, pathobj);
        Py_DECREF(pathobj);
        return NULL;
    }
    struct stat st;
    int bad = fstat(fd, &st) != 0;
    if (!bad && !S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        bad = 1;
    }
    if (bad) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, pathobj);
        close(fd);
        Py_DECREF(pathobj);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    const uint8_t *map = NULL;
    if (len > 0) {
        void *m;
        Py_BEGIN_ALLOW_THREADS
        m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0); /* faulted in a window at a time: window_advance */
        if (m != MAP_FAILED) {
            madvise(m, len, MADV_SEQUENTIAL);
            madvise(m, len, MADV_WILLNEED); /* read ahead into the page cache (not into this process) */
        }
        Py_END_ALLOW_THREADS
        if (m == MAP_FAILED) {
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, pathobj);
            close(fd);
            Py_DECREF(pathobj);
            return NULL;
        }
        map = m;
    }
    close(fd);
    Py_DECREF(pathobj);
    static const uint8_t empty[1] = {0};
    PyObject *out = digest_memory(map ? map : empty, len, k, want_all, map != NULL);
    if (map) munmap((void *)map, len);
    return out;
}

static PyObject *py_digest_bytes(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"data", "sample", "all_keys", NULL};
    Py_buffer view;
    Py_ssize_t k = 64;
    int want_all = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|np", kwlist, &view, &k, &want_all)) return NULL;
    static const uint8_t empty[1] = {0};
    PyObject *out = digest_memory(view.len ? view.buf : empty, (size_t)view.len, k, want_all, 0);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *py_siphash128(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"data", "key", NULL};
    Py_buffer data, key = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|y*", kwlist, &data, &key)) return NULL;
    uint64_t k0 = DIGEST_K0, k1 = DIGEST_K1;
    if (key.buf) {
        if (key.len != 16) {
            PyBuffer_Release(&data);
            PyBuffer_Release(&key);
            PyErr_SetString(PyExc_ValueError, "the key must be 16 bytes");
            return NULL;
        }
        k0 = load_le64(key.buf);
        k1 = load_le64((const uint8_t *)key.buf + 8);
        PyBuffer_Release(&key);
    }
    sip_t s;
    sip_init_key(&s, k0, k1);
    /* fed in uneven pieces on purpose, so the streaming paths are what the test vectors check */
    const uint8_t *p = data.buf;
    size_t n = (size_t)data.len, piece = 1;
    while (n) {
        size_t m = piece < n ? piece : n;
        sip_update(&s, p, m);
        p += m;
        n -= m;
        piece = piece % 11 + 2;
    }
    PyBuffer_Release(&data);
    return hash_bytes(sip_final(&s));
}

static PyObject *py_crc64(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    uint64_t crc = crc64(0, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(crc);
}

static PyMethodDef methods[] = {
    {"digest_file", (PyCFunction)(void (*)(void))py_digest_file, METH_VARARGS | METH_KEYWORDS,
     "digest_file(path, sample=64, all_keys=False) -> dict: the bdr-rdb-1 digest of an RDB file."},
    {"digest_bytes", (PyCFunction)(void (*)(void))py_digest_bytes, METH_VARARGS | METH_KEYWORDS,
     "digest_bytes(data, sample=64, all_keys=False) -> dict: the same for RDB bytes in memory."},
    {"siphash128", (PyCFunction)(void (*)(void))py_siphash128, METH_VARARGS | METH_KEYWORDS,
     "siphash128(data, key=b'bdr-rdb-digest-1') -> bytes: SipHash-2-4 with 128-bit output."},
    {"crc64", py_crc64, METH_VARARGS, "crc64(data) -> int: CRC-64/Jones as Redis computes it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_digest", "The bdr-rdb-1 digest of Redis RDB files, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__digest(void) {
    DIGEST_K0 = load_le64((const uint8_t *)"bdr-rdb-");
    DIGEST_K1 = load_le64((const uint8_t *)"digest-1");
    crc64_init();
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    RdbError = PyErr_NewExceptionWithDoc("bdr.engines.redis.rdb._digest.RdbError",
                                         "An RDB file that cannot be digested: args are (message, offset, kind).",
                                         PyExc_ValueError, NULL);
    if (!RdbError || PyModule_AddObject(m, "RdbError", RdbError) < 0) {
        Py_XDECREF(RdbError);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(RdbError);
    return m;
}
