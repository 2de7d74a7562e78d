/* dmig's native fast paths: the per-row work of a copy that Python cannot do fast enough.
 *
 * Why this exists: a SQLite -> PostgreSQL copy spent about 6 us of Python per row (fetch, convert,
 * COPY escaping, the verification hash) and was CPU-bound on that alone; see bench/RESULTS.md.
 * Everything here works on whole pages or buffers, so Python makes one call per page, never
 * one per row:
 *
 *   dmig_sq_page      step a prepared SQLite SELECT and encode its rows as PostgreSQL COPY text,
 *                     each line exactly as PostgreSQL's own COPY TO would print the stored value,
 *                     summing a 64-bit hash of every line ("echo" sums: verification reads the
 *                     target back as COPY text and must find the same sum);
 *   dmig_hash_lines   the same line hash over COPY text read back from the target;
 *   dmig_hash_binrows the hash of each row of a binary COPY stream (PostgreSQL pass-through).
 *
 * A value this code cannot render exactly as PostgreSQL would (a type it does not know, text in a
 * number column, a timestamp in an unusual spelling, a NUL byte) is never guessed at: the page
 * stops with DMIG_BAIL and the caller redoes it through the general Python path.
 *
 * The SQLite API is declared here rather than included, so only the runtime library that
 * Python's own sqlite3 module loads (libsqlite3.so.0) is needed, not its development headers.
 * Loaded with ctypes (no Python API), so one build serves every Python version.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
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

/* Hash every '\n'-terminated line of buf (the newline left out); a final line without one counts too.
   COPY text escapes newlines inside values, so a line is a row. */
void dmig_hash_lines(dmig_sum *s, const char *buf, size_t len) {
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        sum_add(s, dmig_xxh64(p, (size_t)(stop - p), 0));
        p = nl ? nl + 1 : end;
    }
}

/* Hash every row of a binary COPY stream body (no header): int16 field count, then per field an int32
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

/* ---------------------------------------------------------------- SQLite source */

void *dmig_sq_open(const char *path, int uri, char *err, int errlen) {
    sqlite3 *db = NULL;
    int flags = SQ_OPEN_READONLY | (uri ? SQ_OPEN_URI : 0);
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
    int bail_col;  /* the column whose value stopped the page (DMIG_BAIL) */
    long long bail_row; /* rows encoded before it */
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

static inline char *put_int(char *o, long long v) {
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *o++ = '-';
    while (n)
        *o++ = tmp[--n];
    return o;
}

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

/* A REAL into numeric(p, scale): the text PostgreSQL prints when given Python's repr of the value
   (what the general path sends), or 0 when that is not certain. r / 10^scale is computed with both
   operands exact, so IEEE division rounds it exactly as strtod would round the decimal string: equal
   to x means the scale-digit decimal round-trips, and below the magnitude bound only one such decimal
   can, which is then also the value of repr(x). */
static char *put_numeric_real(char *o, double x, int scale) {
    if (!isfinite(x) || scale < 0 || scale > 9 || fabs(x) >= 4e15 / POW10[scale])
        return NULL;
    long long r = llround(x * POW10[scale]);
    if ((double)r / POW10[scale] != x)
        return NULL;
    if (r < 0) {
        *o++ = '-';
        r = -r;
    }
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + r % 10);
        r /= 10;
    } while (r);
    while (n <= scale)
        digits[n++] = '0';
    while (n > scale)
        *o++ = digits[--n];
    if (scale) {
        *o++ = '.';
        while (n)
            *o++ = digits[--n];
    }
    return o;
}

static inline int digit2(const unsigned char *s) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static int valid_date(const unsigned char *s) {
    int c = digit2(s), y2 = digit2(s + 2);
    if (c < 0 || y2 < 0 || s[4] != '-' || s[7] != '-')
        return 0;
    int year = c * 100 + y2, month = digit2(s + 5), day = digit2(s + 8);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= mdays[month - 1] + (month == 2 && leap);
}

/* 'YYYY-MM-DD HH:MM:SS[.f{1,6}]' (or with 'T'), printed as PostgreSQL prints a timestamp: a space,
   and the fraction without trailing zeros. Anything else: NULL. */
static char *put_timestamp(char *o, const unsigned char *s, int n, int precision) {
    if (n < 19 || !valid_date(s) || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':')
        return NULL;
    int hh = digit2(s + 11), mm = digit2(s + 14), ss = digit2(s + 17);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59)
        return NULL;
    int frac = 0;
    if (n > 19) {
        if (s[19] != '.' || n == 20 || n - 20 > 6)
            return NULL;
        for (int i = 20; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                return NULL;
        frac = n - 20;
        while (frac && s[19 + frac] == '0')
            frac--;
        if (frac > precision)
            return NULL; /* the column would round it */
    }
    memcpy(o, s, 19);
    o[10] = ' ';
    o += 19;
    if (frac) {
        memcpy(o, s + 19, (size_t)frac + 1);
        o += frac + 1;
    }
    return o;
}

/* COPY text escaping, byte for byte what PostgreSQL's COPY TO prints: backslash, and the six control
   characters with a letter escape; other bytes as they are. A NUL cannot be stored: NULL. */
static char *put_text(char *o, const unsigned char *s, int n) {
    for (int i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        char e;
        switch (c) {
        case '\\': e = '\\'; break;
        case '\b': e = 'b'; break;
        case '\f': e = 'f'; break;
        case '\n': e = 'n'; break;
        case '\r': e = 'r'; break;
        case '\t': e = 't'; break;
        case '\v': e = 'v'; break;
        case 0: return NULL;
        default: *o++ = (char)c; continue;
        }
        *o++ = '\\';
        *o++ = e;
    }
    return o;
}

/* Encode one column value at o (room reserved by the caller); NULL: bail. */
static char *encode(sqlite3_stmt *st, int col, int code, int arg, char *o) {
    int t = sqlite3_column_type(st, col);
    if (t == SQ_NULL) {
        *o++ = '\\';
        *o++ = 'N';
        return o;
    }
    switch (code) {
    case C_INT:
        return t == SQ_INTEGER ? put_int(o, sqlite3_column_int64(st, col)) : NULL;
    case C_BOOL:
        if (t != SQ_INTEGER)
            return NULL;
        switch (sqlite3_column_int64(st, col)) {
        case 0: *o++ = 'f'; return o;
        case 1: *o++ = 't'; return o;
        default: return NULL;
        }
    case C_NUMERIC:
        if (t == SQ_INTEGER) {
            o = put_int(o, sqlite3_column_int64(st, col));
            if (arg > 0) {
                *o++ = '.';
                memset(o, '0', (size_t)arg);
                o += arg;
            }
            return o;
        }
        return t == SQ_FLOAT ? put_numeric_real(o, sqlite3_column_double(st, col), arg) : NULL;
    case C_TEXT:
        if (t != SQ_TEXT)
            return NULL;
        {
            const unsigned char *s = sqlite3_column_text(st, col);
            return put_text(o, s, sqlite3_column_bytes(st, col));
        }
    case C_TIMESTAMP:
        if (t != SQ_TEXT)
            return NULL;
        {
            const unsigned char *s = sqlite3_column_text(st, col);
            return put_timestamp(o, s, sqlite3_column_bytes(st, col), arg);
        }
    case C_DATE:
        if (t != SQ_TEXT)
            return NULL;
        {
            const unsigned char *s = sqlite3_column_text(st, col);
            if (sqlite3_column_bytes(st, col) != 10 || !valid_date(s))
                return NULL;
            memcpy(o, s, 10);
            return o + 10;
        }
    case C_FLOAT8:
        if (t != SQ_FLOAT && t != SQ_INTEGER)
            return NULL;
        {
            /* 17 significant digits read back to the same double; PostgreSQL prints the shortest
               form instead, so the line hash takes the value's bits (see float_bits). */
            double x = sqlite3_column_double(st, col);
            if (!isfinite(x))
                return NULL;
            return o + snprintf(o, 32, "%.17g", x);
        }
    case C_BYTEA:
        if (t != SQ_BLOB)
            return NULL;
        {
            static const char hex[] = "0123456789abcdef";
            const unsigned char *b = (const unsigned char *)sqlite3_column_blob(st, col);
            int n = sqlite3_column_bytes(st, col);
            memcpy(o, "\\\\x", 3);
            o += 3;
            for (int i = 0; i < n; i++) {
                *o++ = hex[b[i] >> 4];
                *o++ = hex[b[i] & 15];
            }
            return o;
        }
    default:
        return NULL;
    }
}

/* The room one value may take once encoded: text doubles at worst (escapes), a blob too (hex). */
static size_t room(sqlite3_stmt *st, int col) {
    int t = sqlite3_column_type(st, col);
    if (t == SQ_TEXT || t == SQ_BLOB)
        return 2 * (size_t)sqlite3_column_bytes(st, col) + 4;
    return 48;
}

/* A double as the read-back prints float8send(x): bytea hex of its big-endian bits, COPY-escaped. */
static char *float_bits(char *o, const char *text) {
    static const char hex[] = "0123456789abcdef";
    double x = strtod(text, NULL);
    uint64_t bits;
    memcpy(&bits, &x, 8);
    memcpy(o, "\\\\x", 3);
    o += 3;
    for (int shift = 60; shift >= 0; shift -= 4)
        *o++ = hex[(bits >> shift) & 15];
    return o;
}

/* The hashed form of a line with float8 columns: each such field replaced by its bits (NULL stays \N). */
static size_t hash_form(const char *line, const size_t *ends, const int *codes, int ncols, char *out) {
    char *o = out;
    size_t start = 0;
    for (int c = 0; c < ncols; c++) {
        if (c)
            *o++ = '\t';
        size_t n = ends[c] - start;
        if (codes[c] == C_FLOAT8 && !(n == 2 && line[start] == '\\' && line[start + 1] == 'N')) {
            char text[40];
            memcpy(text, line + start, n);
            text[n] = 0;
            o = float_bits(o, text);
        } else {
            memcpy(o, line + start, n);
            o += n;
        }
        start = ends[c] + 1;
    }
    return (size_t)(o - out);
}

/* Step st (already bound) to the end, appending each row as one COPY text line to pg->buf and adding
   its line hash to pg->sum; keycol is the integer key's column, kept in pg->last_key. */
int dmig_sq_page(void *stmt, const int *codes, const int *args, int ncols, int keycol, dmig_page *pg) {
    sqlite3_stmt *st = (sqlite3_stmt *)stmt;
    pg->len = 0;
    pg->sum.rows = pg->sum.lo = pg->sum.hi = 0;
    pg->bail_col = -1;
    pg->bail_row = 0;
    pg->err[0] = 0;
    int floats = 0;
    for (int c = 0; c < ncols; c++)
        floats |= codes[c] == C_FLOAT8;
    size_t *ends = floats ? (size_t *)malloc(sizeof(size_t) * (size_t)ncols) : NULL;
    char *scratch = NULL;
    size_t scratch_cap = 0;
    int status = DMIG_DONE;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQ_DONE)
            break;
        if (rc != SQ_ROW) {
            strncpy(pg->err, sqlite3_errmsg(sqlite3_db_handle(st)), sizeof(pg->err) - 1);
            status = DMIG_ERROR;
            break;
        }
        size_t need = 1;
        for (int c = 0; c < ncols; c++)
            need += room(st, c) + 1;
        if (!reserve(pg, need) || (floats && !ends)) {
            status = DMIG_NOMEM;
            break;
        }
        char *start = pg->buf + pg->len, *o = start;
        for (int c = 0; c < ncols && o; c++) {
            if (c)
                *o++ = '\t';
            o = encode(st, c, codes[c], args[c], o);
            if (!o) {
                pg->bail_col = c;
                pg->bail_row = (long long)pg->sum.rows;
            } else if (floats) {
                ends[c] = (size_t)(o - start);
            }
        }
        if (!o) {
            status = DMIG_BAIL;
            break;
        }
        size_t n = (size_t)(o - start);
        if (floats) {
            if (scratch_cap < need + 24 * (size_t)ncols) {
                scratch_cap = 2 * (need + 24 * (size_t)ncols);
                free(scratch);
                scratch = (char *)malloc(scratch_cap);
                if (!scratch) {
                    status = DMIG_NOMEM;
                    break;
                }
            }
            sum_add(&pg->sum, dmig_xxh64(scratch, hash_form(start, ends, codes, ncols, scratch), 0));
        } else {
            sum_add(&pg->sum, dmig_xxh64(start, n, 0));
        }
        *o++ = '\n';
        pg->len = (size_t)(o - pg->buf);
        if (keycol >= 0)
            pg->last_key = sqlite3_column_int64(st, keycol);
    }
    free(ends);
    free(scratch);
    return status;
}
