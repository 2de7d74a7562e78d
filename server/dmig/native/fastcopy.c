/* dmig's native fast paths: the per-row work of a copy that Python cannot do fast enough.
 *
 * Why this exists: a SQLite -> PostgreSQL copy spent about 6 us of Python per row (fetch, convert,
 * COPY escaping, the verification hash) and was CPU-bound on that alone; see bench/RESULTS.md.
 * Everything here works on whole pages or buffers, so Python makes one call per page, never
 * one per row:
 *
 *   dmig_sq_page      step a prepared SQLite SELECT and encode its rows in PostgreSQL's binary COPY
 *                     format, each value exactly as PostgreSQL stores and sends it back (numerics
 *                     normalised), summing a 64-bit hash of every row ("echo" sums);
 *   dmig_hash_binrows the same row hash over a binary COPY stream in buffers;
 *   dmig_pg_pump      a binary COPY moved from one PostgreSQL connection to another (or only read),
 *                     hashing its rows: the pass-through's load and every verification read-back,
 *                     which otherwise cost a Python call per row.
 *
 * A value this code cannot render exactly as PostgreSQL would (a type it does not know, text in a
 * number column, a timestamp in an unusual spelling, an integer too wide for its column) is never
 * guessed at: the page stops with DMIG_BAIL and the caller redoes it through the general Python path.
 *
 * The SQLite API is declared here rather than included, so only the runtime library that
 * Python's own sqlite3 module loads (libsqlite3.so.0) is needed, not its development headers.
 * Loaded with ctypes (no Python API), so one build serves every Python version.
 */
#include <math.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
int sqlite3_open_v2(const char *, sqlite3 **, int, const char *);
int sqlite3_close_v2(sqlite3 *);
const char *sqlite3_errmsg(sqlite3 *);
int sqlite3_busy_timeout(sqlite3 *, int);
int sqlite3_prepare_v2(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
int sqlite3_step(sqlite3_stmt *);
sqlite3 *sqlite3_db_handle(sqlite3_stmt *);
int sqlite3_reset(sqlite3_stmt *);
int sqlite3_clear_bindings(sqlite3_stmt *);
int sqlite3_finalize(sqlite3_stmt *);
int sqlite3_bind_int64(sqlite3_stmt *, int, long long);
int sqlite3_bind_double(sqlite3_stmt *, int, double);
int sqlite3_bind_text(sqlite3_stmt *, int, const char *, int, void (*)(void *));
int sqlite3_bind_null(sqlite3_stmt *, int);
int sqlite3_column_type(sqlite3_stmt *, int);
long long sqlite3_column_int64(sqlite3_stmt *, int);
double sqlite3_column_double(sqlite3_stmt *, int);
const unsigned char *sqlite3_column_text(sqlite3_stmt *, int);
const void *sqlite3_column_blob(sqlite3_stmt *, int);
int sqlite3_column_bytes(sqlite3_stmt *, int);

#define SQ_OK 0
#define SQ_ROW 100
#define SQ_DONE 101
#define SQ_OPEN_READONLY 0x01
#define SQ_OPEN_URI 0x40
#define SQ_OPEN_NOMUTEX 0x8000
#define SQ_INTEGER 1
#define SQ_FLOAT 2
#define SQ_TEXT 3
#define SQ_BLOB 4
#define SQ_NULL 5
#define SQ_TRANSIENT ((void (*)(void *)) - 1)

/* column codes, mirrored in dmig/native/__init__.py */
enum { C_INT = 1, C_TEXT = 2, C_NUMERIC = 3, C_TIMESTAMP = 4, C_DATE = 5, C_BOOL = 6, C_FLOAT8 = 7, C_BYTEA = 8 };
/* results of dmig_sq_page */
enum { DMIG_DONE = 0, DMIG_BAIL = 1, DMIG_ERROR = 2, DMIG_NOMEM = 3 };
#define MAX_COLUMNS 1600 /* PostgreSQL's own limit per table */

/* ---------------------------------------------------------------- xxHash64 (the public algorithm) */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint64_t xround(uint64_t acc, uint64_t in) {
    acc += in * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t v) {
    acc ^= xround(0, v);
    return acc * P1 + P4;
}

uint64_t dmig_xxh64(const void *data, size_t len, uint64_t seed) {
    const uint8_t *p = (const uint8_t *)data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        const uint8_t *limit = end - 32;
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        do {
            v1 = xround(v1, rd64(p));
            v2 = xround(v2, rd64(p + 8));
            v3 = xround(v3, rd64(p + 16));
            v4 = xround(v4, rd64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = xmerge(h, v1);
        h = xmerge(h, v2);
        h = xmerge(h, v3);
        h = xmerge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    while (p + 8 <= end) {
        h ^= xround(0, rd64(p));
        h = rotl(h, 27) * P1 + P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)rd32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * P5;
        h = rotl(h, 11) * P1;
        p++;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* ---------------------------------------------------------------- sums */

/* (rows, 128-bit sum of 64-bit row hashes): order-independent, so pages, partitions and a whole
   table read back in any order add up alike. */
typedef struct {
    uint64_t rows;
    uint64_t lo, hi;
} dmig_sum;

static inline void sum_add(dmig_sum *s, uint64_t h) {
    uint64_t lo = s->lo + h;
    s->hi += lo < s->lo;
    s->lo = lo;
    s->rows++;
}

/* Hash every row of a binary COPY stream (the header left out by the caller): int16 field count, then per field an int32
   length (-1: NULL) and the bytes. Returns bytes consumed: a partial last row is left for the next
   call; the trailer (field count -1) is consumed and ends the rows. -1 if the framing is broken. */
long long dmig_hash_binrows(dmig_sum *s, const char *buf, size_t len) {
    const uint8_t *p = (const uint8_t *)buf, *end = p + len, *row;
    while (p + 2 <= end) {
        row = p;
        int16_t fields = (int16_t)((p[0] << 8) | p[1]);
        if (fields == -1)
            return (long long)(p + 2 - (const uint8_t *)buf);
        if (fields < 0)
            return -1;
        p += 2;
        for (int i = 0; i < fields; i++) {
            if (p + 4 > end)
                return (long long)(row - (const uint8_t *)buf);
            int32_t n = (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
            p += 4;
            if (n > 0) {
                if ((size_t)(end - p) < (size_t)n)
                    return (long long)(row - (const uint8_t *)buf);
                p += n;
            } else if (n < -1) {
                return -1;
            }
        }
        sum_add(s, dmig_xxh64(row, (size_t)(p - row), 0));
    }
    return (long long)(p - (const uint8_t *)buf);
}

/* ---------------------------------------------------------------- libpq COPY pump */

/* libpq functions, taken by the caller from the very library instance the driver uses (a PGconn
   belongs to the build that made it), so none of its headers or link flags are needed here. */
typedef struct {
    int (*get_copy_data)(void *, char **, int);
    int (*put_copy_data)(void *, const char *, int);
    int (*flush)(void *);
    int (*socket)(void *);
    void (*freemem)(void *);
} dmig_pq;

static int wait_writable(const dmig_pq *pq, void *conn) {
    struct pollfd p = {pq->socket(conn), POLLOUT, 0};
    return poll(&p, 1, -1) < 0 ? -1 : 0;
}

/* Move a started binary COPY TO STDOUT on src into a started COPY FROM STDIN on dst (NULL: only read),
   adding each row's hash to sum (NULL: no hashing). The server sends one message per row, the first
   one led by the stream header and the last one the trailer; both are forwarded, neither is hashed.
   Returns the bytes moved, -1 when the source failed, -2 when the target did; the caller collects the
   commands' results (and their errors) afterwards, as after any COPY. */
long long dmig_pg_pump(const dmig_pq *pq, void *src, void *dst, dmig_sum *sum) {
    long long total = 0;
    int first = 1;
    for (;;) {
        char *buf = NULL;
        int n = pq->get_copy_data(src, &buf, 0);
        if (n == -1)
            break;
        if (n < 0)
            return -1;
        if (n == 0)
            continue;
        const uint8_t *row = (const uint8_t *)buf;
        size_t len = (size_t)n;
        if (first) {
            first = 0;
            if (len >= 19 && memcmp(row, "PGCOPY\n\377\r\n\0", 11) == 0) {
                size_t skip = 19 + (((size_t)row[15] << 24) | ((size_t)row[16] << 16) | ((size_t)row[17] << 8) | row[18]);
                skip = skip > len ? len : skip;
                row += skip;
                len -= skip;
            }
        }
        if (sum && len > 0 && !(len == 2 && row[0] == 0xff && row[1] == 0xff))
            sum_add(sum, dmig_xxh64(row, len, 0));
        if (dst) {
            int r;
            while ((r = pq->put_copy_data(dst, buf, n)) == 0)
                if (wait_writable(pq, dst) < 0 || pq->flush(dst) < 0) {
                    r = -1;
                    break;
                }
            if (r < 0) {
                pq->freemem(buf);
                return -2;
            }
        }
        total += n;
        pq->freemem(buf);
    }
    if (dst) {
        int f;
        while ((f = pq->flush(dst)) == 1)
            if (wait_writable(pq, dst) < 0)
                return -2;
        if (f < 0)
            return -2;
    }
    return total;
}

/* ---------------------------------------------------------------- SQLite source */

void *dmig_sq_open(const char *path, int uri, char *err, int errlen) {
    sqlite3 *db = NULL;
    /* one thread uses this connection: no per-call mutex (a fifth of the encoder's time, profiled) */
    int flags = SQ_OPEN_READONLY | SQ_OPEN_NOMUTEX | (uri ? SQ_OPEN_URI : 0);
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQ_OK) {
        if (db) {
            strncpy(err, sqlite3_errmsg(db), (size_t)errlen - 1);
            sqlite3_close_v2(db);
        } else {
            strncpy(err, "out of memory", (size_t)errlen - 1);
        }
        return NULL;
    }
    sqlite3_busy_timeout(db, 30000);
    return db;
}

void dmig_sq_close(void *db) { sqlite3_close_v2((sqlite3 *)db); }

void *dmig_sq_prepare(void *db, const char *sql, char *err, int errlen) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2((sqlite3 *)db, sql, -1, &st, NULL) != SQ_OK) {
        strncpy(err, sqlite3_errmsg((sqlite3 *)db), (size_t)errlen - 1);
        return NULL;
    }
    return st;
}

void dmig_sq_finalize(void *st) { sqlite3_finalize((sqlite3_stmt *)st); }

/* kind: 0 NULL, 1 int64, 2 double, 3 UTF-8 text. Returns SQLite's result code. */
int dmig_sq_bind(void *st, int index, int kind, long long i, double d, const char *text, int textlen) {
    sqlite3_stmt *s = (sqlite3_stmt *)st;
    switch (kind) {
    case 1:
        return sqlite3_bind_int64(s, index, i);
    case 2:
        return sqlite3_bind_double(s, index, d);
    case 3:
        return sqlite3_bind_text(s, index, text, textlen, SQ_TRANSIENT);
    default:
        return sqlite3_bind_null(s, index);
    }
}

void dmig_sq_reset(void *st) {
    sqlite3_reset((sqlite3_stmt *)st);
    sqlite3_clear_bindings((sqlite3_stmt *)st);
}

/* One page of encoded rows. buf is owned here (dmig_page_free); Python copies it out per page. */
typedef struct {
    char *buf;
    size_t len, cap;
    dmig_sum sum;
    long long last_key;
    char err[256];
} dmig_page;

dmig_page *dmig_page_new(void) { return (dmig_page *)calloc(1, sizeof(dmig_page)); }

void dmig_page_free(dmig_page *pg) {
    if (pg) {
        free(pg->buf);
        free(pg);
    }
}

static int reserve(dmig_page *pg, size_t more) {
    if (pg->len + more <= pg->cap)
        return 1;
    size_t cap = pg->cap ? pg->cap : 1 << 20;
    while (cap < pg->len + more)
        cap *= 2;
    char *nb = (char *)realloc(pg->buf, cap);
    if (!nb)
        return 0;
    pg->buf = nb;
    pg->cap = cap;
    return 1;
}

static inline char *put_be(char *o, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--)
        *o++ = (char)((v >> (8 * i)) & 0xff);
    return o;
}

static const long long POW10[] = {1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL,
                                  100000000LL, 1000000000LL};

/* A numeric in PostgreSQL's binary form, normalised as it stores it: base-10000 digits without
   leading or trailing zero groups, dscale the column's scale. The value is u * 10^-frac. */
static char *put_numeric(char *o, unsigned long long u, int frac, int negative, int dscale) {
    /* split u into the integer part and a fraction of 4-digit groups */
    int fgroups = (frac + 3) / 4;
    unsigned long long scale_up = 1;
    for (int i = frac; i < fgroups * 4; i++)
        scale_up *= 10; /* the fraction padded to whole groups */
    unsigned long long ip = u, fp = 0, p = 1;
    for (int i = 0; i < frac; i++)
        p *= 10;
    ip = u / p;
    fp = (u % p) * scale_up;
    uint16_t digits[16];
    int n = 0;
    uint16_t igroups[8];
    int ni = 0;
    while (ip) {
        igroups[ni++] = (uint16_t)(ip % 10000);
        ip /= 10000;
    }
    for (int i = ni - 1; i >= 0; i--)
        digits[n++] = igroups[i];
    uint16_t fgroup[8];
    for (int i = fgroups - 1; i >= 0; i--) {
        fgroup[i] = (uint16_t)(fp % 10000);
        fp /= 10000;
    }
    for (int i = 0; i < fgroups; i++)
        digits[n++] = fgroup[i];
    int weight = ni - 1, first = 0, last = n;
    while (first < last && digits[first] == 0) {
        first++;
        weight--;
    }
    while (last > first && digits[last - 1] == 0)
        last--;
    int nd = last - first;
    if (nd == 0) {
        weight = 0;
        negative = 0;
    }
    o = put_be(o, (uint64_t)nd, 2);
    o = put_be(o, (uint64_t)(uint16_t)(int16_t)weight, 2);
    o = put_be(o, negative ? 0x4000 : 0, 2);
    o = put_be(o, (uint64_t)dscale, 2);
    for (int i = first; i < last; i++)
        o = put_be(o, digits[i], 2);
    return o;
}

/* A REAL into numeric(p, scale), or NULL when the general path must decide. The general path sends
   Python's repr of the value, which PostgreSQL rounds to the scale; r / 10^scale is computed with both
   operands exact, so IEEE division rounds it exactly as strtod would round the decimal string: equal
   to x means the scale-digit decimal round-trips, and below the magnitude bound only one such decimal
   can, which is then also the value of repr(x). */
static char *put_numeric_real(char *o, double x, int scale) {
    if (!isfinite(x) || scale < 0 || scale > 9 || fabs(x) >= 4e15 / (double)POW10[scale])
        return NULL;
    long long r = llround(x * (double)POW10[scale]);
    if ((double)r / (double)POW10[scale] != x)
        return NULL;
    return put_numeric(o, (unsigned long long)(r < 0 ? -r : r), scale, r < 0, scale);
}

static inline int digit2(const unsigned char *s) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Days from 2000-01-01 (PostgreSQL's epoch) of a valid 'YYYY-MM-DD', or INT32_MIN. */
static long long pg_days(const unsigned char *s) {
    int c = digit2(s), y2 = digit2(s + 2);
    if (c < 0 || y2 < 0 || s[4] != '-' || s[7] != '-')
        return INT32_MIN;
    int year = c * 100 + y2, month = digit2(s + 5), day = digit2(s + 8);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1)
        return INT32_MIN;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[month - 1] + (month == 2 && leap))
        return INT32_MIN;
    /* days from civil (proleptic Gregorian), then from 1970-01-01 to 2000-01-01 */
    long long y = year - (month <= 2);
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468 - 10957;
}

/* 'YYYY-MM-DD HH:MM:SS[.f{1,6}]' (or with 'T') as microseconds from 2000-01-01; 0 when not exactly that. */
static int parse_timestamp(const unsigned char *s, int n, int precision, long long *out) {
    long long days = n >= 19 ? pg_days(s) : INT32_MIN;
    if (days == INT32_MIN || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':')
        return 0;
    int hh = digit2(s + 11), mm = digit2(s + 14), ss = digit2(s + 17);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59)
        return 0;
    long long us = 0;
    if (n > 19) {
        int frac = n - 20;
        if (s[19] != '.' || frac < 1 || frac > 6)
            return 0;
        for (int i = 20; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return 0;
            us = us * 10 + (s[i] - '0');
        }
        while (frac && s[19 + frac] == '0')
            frac--;
        if (frac > precision)
            return 0; /* the column would round it */
        for (int i = n - 20; i < 6; i++)
            us *= 10;
    }
    *out = ((days * 24 + hh) * 60 + mm) * 60000000LL + ss * 1000000LL + us;
    return 1;
}

/* Encode one column value at o as a binary COPY field (int32 length, then the bytes; room reserved by
   the caller); NULL: bail. */
static char *encode(sqlite3_stmt *st, int col, int t, int code, int arg, char *o) {
    if (t == SQ_NULL)
        return put_be(o, 0xffffffffu, 4);
    char *len_at = o, *v = o + 4;
    switch (code) {
    case C_INT: {
        if (t != SQ_INTEGER)
            return NULL;
        long long x = sqlite3_column_int64(st, col);
        if ((arg == 2 && (x < INT16_MIN || x > INT16_MAX)) || (arg == 4 && (x < INT32_MIN || x > INT32_MAX)))
            return NULL; /* the target refuses it: the general path rejects the row */
        v = put_be(v, (uint64_t)x, arg);
        break;
    }
    case C_BOOL: {
        if (t != SQ_INTEGER)
            return NULL;
        long long x = sqlite3_column_int64(st, col);
        if (x != 0 && x != 1)
            return NULL;
        *v++ = (char)x;
        break;
    }
    case C_NUMERIC:
        if (t == SQ_INTEGER) {
            long long x = sqlite3_column_int64(st, col);
            unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
            v = put_numeric(v, u, 0, x < 0, arg > 0 ? arg : 0);
        } else if (t == SQ_FLOAT) {
            v = put_numeric_real(v, sqlite3_column_double(st, col), arg);
        } else {
            return NULL;
        }
        if (!v)
            return NULL;
        break;
    case C_TEXT:
    case C_BYTEA: {
        if (t != (code == C_TEXT ? SQ_TEXT : SQ_BLOB))
            return NULL;
        const void *b = code == C_TEXT ? (const void *)sqlite3_column_text(st, col) : sqlite3_column_blob(st, col);
        int n = sqlite3_column_bytes(st, col);
        memcpy(v, b, (size_t)n);
        v += n;
        break;
    }
    case C_TIMESTAMP: {
        long long us;
        if (t != SQ_TEXT || !parse_timestamp(sqlite3_column_text(st, col), sqlite3_column_bytes(st, col), arg, &us))
            return NULL;
        v = put_be(v, (uint64_t)us, 8);
        break;
    }
    case C_DATE: {
        if (t != SQ_TEXT || sqlite3_column_bytes(st, col) != 10)
            return NULL;
        long long days = pg_days(sqlite3_column_text(st, col));
        if (days == INT32_MIN)
            return NULL;
        v = put_be(v, (uint64_t)days, 4);
        break;
    }
    case C_FLOAT8: {
        if (t != SQ_FLOAT && t != SQ_INTEGER)
            return NULL;
        double x = sqlite3_column_double(st, col);
        if (!isfinite(x))
            return NULL;
        uint64_t bits;
        memcpy(&bits, &x, 8);
        v = put_be(v, bits, 8);
        break;
    }
    default:
        return NULL;
    }
    put_be(len_at, (uint64_t)(v - len_at - 4), 4);
    return v;
}

/* The room one value may take once encoded: its bytes, or a numeric's groups, plus the length word. */
static size_t room(sqlite3_stmt *st, int col, int t) {
    if (t == SQ_TEXT || t == SQ_BLOB)
        return (size_t)sqlite3_column_bytes(st, col) + 8;
    return 48;
}

/* Step st (already bound) to the end, appending each row to pg->buf as a binary COPY row (no header,
   no trailer) and adding the row's hash to pg->sum: the same hash dmig_hash_binrows gives the row when
   the target is read back as binary COPY. keycol is the integer key's column, kept in pg->last_key. */
int dmig_sq_page(void *stmt, const int *codes, const int *args, int ncols, int keycol, dmig_page *pg) {
    sqlite3_stmt *st = (sqlite3_stmt *)stmt;
    int types[MAX_COLUMNS];
    if (ncols > MAX_COLUMNS) {
        strncpy(pg->err, "too many columns for the native encoder", sizeof(pg->err) - 1);
        return DMIG_ERROR;
    }
    pg->len = 0;
    pg->sum.rows = pg->sum.lo = pg->sum.hi = 0;
    pg->err[0] = 0;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQ_DONE)
            return DMIG_DONE;
        if (rc != SQ_ROW) {
            strncpy(pg->err, sqlite3_errmsg(sqlite3_db_handle(st)), sizeof(pg->err) - 1);
            return DMIG_ERROR;
        }
        size_t need = 2;
        for (int c = 0; c < ncols && c < MAX_COLUMNS; c++) {
            types[c] = sqlite3_column_type(st, c);
            need += room(st, c, types[c]);
        }
        if (!reserve(pg, need))
            return DMIG_NOMEM;
        char *start = pg->buf + pg->len;
        char *o = put_be(start, (uint64_t)ncols, 2);
        for (int c = 0; c < ncols; c++) {
            o = encode(st, c, types[c], codes[c], args[c], o);
            if (!o)
                return DMIG_BAIL; /* the caller redoes the whole page through the general path */
        }
        sum_add(&pg->sum, dmig_xxh64(start, (size_t)(o - start), 0));
        pg->len = (size_t)(o - pg->buf);
        if (keycol >= 0)
            pg->last_key = sqlite3_column_int64(st, keycol);
    }
}
